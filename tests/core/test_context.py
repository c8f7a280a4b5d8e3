"""The request context is declared once (llavero/core/context.py); what takes a context takes
exactly its fields."""

from __future__ import annotations

import inspect

from llavero.api.schemas import RestrictionTestBody
from llavero.api.verification import VerifyBody
from llavero.core import context
from llavero.core.verify import VerifyRequest


def test_verify_takes_the_key_the_context_and_the_cost() -> None:
    names = tuple(inspect.signature(VerifyRequest).parameters)
    assert names == ("key", *context.NAMES, "cost")


def test_the_api_bodies_are_built_from_the_declaration() -> None:
    assert tuple(RestrictionTestBody.model_fields) == context.NAMES
    assert tuple(VerifyBody.model_fields) == ("key", *context.NAMES, "cost")
    for field in context.CONTEXT_FIELDS:
        declared = VerifyBody.model_fields[field.name]
        assert declared.description == field.description
        assert any(getattr(m, "max_length", None) == field.max_length for m in declared.metadata)


def test_an_edge_reads_the_declared_headers() -> None:
    headers = {
        "referer": "https://app.example.com/",
        "x-android-package": "com.example.app",
        "x-android-cert": "AB" * 20,
        "x-ios-bundle-identifier": "com.example.ios",
    }
    read = context.from_headers(headers, ip="203.0.113.7", service="svc", method=None)
    assert read == context.RequestContext(
        ip="203.0.113.7",
        referrer="https://app.example.com/",
        android_package="com.example.app",
        android_cert="AB" * 20,
        ios_bundle_id="com.example.ios",
        service="svc",
    )
