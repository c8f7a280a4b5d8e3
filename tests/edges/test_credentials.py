from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from llavero.core.verify import VerifyRequest
from llavero.edges.credentials import (
    ProxyTrust,
    api_method,
    key_from,
    origin_from,
    without_key,
    wsgi_headers,
)

KEY = "llv_" + "A" * 32 + "abcdef"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"x-goog-api-key": KEY}, ""),
        ({}, f"alt=sse&key={KEY}"),
        ({"Authorization": f"Bearer {KEY}"}, ""),
        ({"authorization": f"bearer  {KEY} "}, ""),
        ({"X-API-Key": KEY}, ""),
    ],
)
def test_the_key_is_found_where_clients_send_it(headers: dict[str, str], query: str) -> None:
    assert key_from(Headers(headers), query) == KEY


def test_no_key_and_other_authorization_schemes_give_none() -> None:
    assert key_from(Headers({"authorization": "Basic dXNlcjpwYXNz"}), "alt=sse") is None
    assert key_from(Headers({"x-goog-api-key": ""}), "key=") is None


def test_gemini_header_wins_over_the_others() -> None:
    headers = Headers({"x-goog-api-key": KEY, "authorization": "Bearer other"})
    assert key_from(headers, "key=third") == KEY


def test_the_query_loses_its_key_and_keeps_the_rest() -> None:
    assert without_key(f"alt=sse&key={KEY}&x=1") == "alt=sse&x=1"
    assert without_key("alt=sse") == "alt=sse"


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1beta/models/gemini-2.5-flash:generateContent", "generateContent"),
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "streamGenerateContent"),
        ("/v1beta/models", None),
        ("/v1/chat/completions", None),
        ("/", None),
    ],
)
def test_the_method_is_the_custom_verb_of_the_path(path: str, method: str | None) -> None:
    assert api_method(path) == method


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trust = ProxyTrust(["10.0.0.0/8", "::1/128"])
    forwarded = Headers({"x-forwarded-for": "203.0.113.9, 198.51.100.7, 10.1.1.1"})
    assert trust.client_ip("10.0.0.2", forwarded) == "198.51.100.7"
    assert trust.client_ip("192.0.2.1", forwarded) == "192.0.2.1"
    assert trust.client_ip("::1", Headers({"x-forwarded-for": "10.0.0.3, 10.0.0.4"})) == "10.0.0.3"
    assert trust.client_ip("10.0.0.2", Headers({"x-real-ip": "203.0.113.5"})) == "203.0.113.5"
    assert ProxyTrust().client_ip("10.0.0.2", forwarded) == "10.0.0.2"


def test_origin_reads_the_headers_of_googles_sdks() -> None:
    headers = Headers(
        {
            "referer": "https://app.example.com/page",
            "x-android-package": "com.example.app",
            "x-android-cert": "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
            "x-ios-bundle-identifier": "com.example.ios",
        }
    )
    origin = origin_from(headers, "203.0.113.9", "/v1beta/models/m:countTokens", "svc.example")
    request = VerifyRequest.for_context(KEY, origin, environment="production")
    assert request.key == KEY
    assert request.ip == "203.0.113.9"
    assert request.referrer == "https://app.example.com/page"
    assert request.android_package == "com.example.app"
    assert request.android_cert == "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"
    assert request.ios_bundle_id == "com.example.ios"
    assert (request.service, request.method) == ("svc.example", "countTokens")
    assert request.environment == "production"


def test_wsgi_environ_headers_are_read_lowercase() -> None:
    environ = {"HTTP_X_GOOG_API_KEY": KEY, "CONTENT_TYPE": "application/json", "PATH_INFO": "/"}
    headers = wsgi_headers(environ)
    assert headers == {"x-goog-api-key": KEY, "content-type": "application/json"}
