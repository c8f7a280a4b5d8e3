"""GitHub's secret scanning partner endpoint: only a body signed by a configured GitHub key
acts, and it acts at once (a revoked key verifies DELETED on the next request)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from tests.conftest import make_service

IDENTIFIER = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"


def pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.fixture
def github_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def scanning(
    settings: Settings, clock: FrozenClock, tmp_path: Path, github_key: ec.EllipticCurvePrivateKey
) -> Iterator[Llavero]:
    document = {
        "public_keys": [{"key_identifier": IDENTIFIER, "key": pem(github_key), "is_current": True}]
    }
    path = tmp_path / "github-keyformat.json"
    path.write_text(json.dumps(document))
    configured = settings.model_copy(update={"github_secret_scanning_keys": str(path)})
    yield from make_service(configured, clock)


@pytest.fixture
def http(scanning: Llavero) -> Iterator[TestClient]:
    with TestClient(create_app(scanning)) as test_client:
        yield test_client


def post(http: TestClient, body: bytes, identifier: str, signature: str) -> object:
    return http.post(
        "/v1/secret-scanning/github",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Github-Public-Key-Identifier": identifier,
            "Github-Public-Key-Signature": signature,
        },
    )


def new_key(llavero: Llavero) -> str:
    project = llavero.projects.create(Actor.system("test"), "Leaky")
    return llavero.keys.create(Actor.system("test"), project.id).key_string


def report_body(key_string: str) -> bytes:
    match = {
        "token": key_string,
        "type": "llavero_api_key",
        "url": "https://github.com/octo/demo/blob/abc123/.env#L1",
        "source": "content",
    }
    return json.dumps([match]).encode()


def test_signed_report_revokes_and_the_next_verify_is_deleted(
    scanning: Llavero, http: TestClient, github_key: ec.EllipticCurvePrivateKey
) -> None:
    key_string = new_key(scanning)
    assert scanning.verifier.verify(VerifyRequest(key_string)).code == "VALID"  # now cached
    body = report_body(key_string)
    response = post(http, body, IDENTIFIER, sign(github_key, body))
    assert response.status_code == 200, response.text
    assert response.json() == [
        {
            "token_hash": hashlib.sha256(key_string.encode()).hexdigest(),
            "token_type": "llavero_api_key",
            "label": "true_positive",
        }
    ]
    assert key_string not in response.text
    assert scanning.verifier.verify(VerifyRequest(key_string)).code == "DELETED"
    (key,) = scanning.keys.list(Actor.system("test"), show_deleted=True).items
    assert key.leak is not None
    assert key.leak.url == "https://github.com/octo/demo/blob/abc123/.env#L1"
    assert key.leak.source == "content"
    events = scanning.audit.list(Actor.system("test"), target=key.id).items
    assert events[0].action == "key.leak"
    assert key_string not in json.dumps([event.model_dump(mode="json") for event in events])


def test_unknown_strings_are_false_positives(
    scanning: Llavero, http: TestClient, github_key: ec.EllipticCurvePrivateKey
) -> None:
    from llavero.core import keyformat

    never_issued = keyformat.generate("llv")
    body = json.dumps(
        [{"token": never_issued, "type": "llavero_api_key"}, {"token": "llv_x"}]
    ).encode()
    response = post(http, body, IDENTIFIER, sign(github_key, body))
    assert response.status_code == 200
    assert [item["label"] for item in response.json()] == ["false_positive", "false_positive"]


def tampered(body: bytes) -> bytes:
    """The same body with one byte changed (inside the url, so it stays valid JSON)."""
    index = body.index(b"demo")
    return body[:index] + b"Demo" + body[index + 4 :]


@pytest.mark.parametrize(
    "attack",
    ["unsigned", "bad_signature", "unknown_identifier", "altered", "other_key", "not_base64"],
)
def test_a_request_not_signed_by_github_changes_nothing(
    scanning: Llavero, http: TestClient, github_key: ec.EllipticCurvePrivateKey, attack: str
) -> None:
    key_string = new_key(scanning)
    body = report_body(key_string)
    good = sign(github_key, body)
    identifier, signature, sent = IDENTIFIER, good, body
    if attack == "unsigned":
        signature = ""
    elif attack == "bad_signature":
        signature = sign(github_key, b"something else")
    elif attack == "unknown_identifier":
        identifier = "0" * 64
    elif attack == "altered":
        sent = tampered(body)  # a replay of a signed body, one byte changed
    elif attack == "other_key":
        signature = sign(ec.generate_private_key(ec.SECP256R1()), body)
    elif attack == "not_base64":
        signature = "%%%" + good
    response = post(http, sent, identifier, signature)
    assert response.status_code in (401, 403), response.text
    assert response.json()["error"]["status"] in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    assert scanning.verifier.verify(VerifyRequest(key_string)).code == "VALID"
    (key,) = scanning.keys.list(Actor.system("test")).items
    assert key.leak is None and key.state == "ACTIVE"


def test_unconfigured_endpoint_refuses_even_a_signed_body(
    llavero: Llavero, github_key: ec.EllipticCurvePrivateKey
) -> None:
    key_string = new_key(llavero)
    body = report_body(key_string)
    with TestClient(create_app(llavero)) as unconfigured:
        response = post(unconfigured, body, IDENTIFIER, sign(github_key, body))
    assert response.status_code == 401
    assert llavero.verifier.verify(VerifyRequest(key_string)).code == "VALID"


def test_a_batch_of_1000_matches_is_answered_in_full(
    scanning: Llavero, http: TestClient, github_key: ec.EllipticCurvePrivateKey
) -> None:
    """GitHub waits a few seconds at most; the duration is measured in bench/leaks.py."""
    project = scanning.projects.create(Actor.system("test"), "Big leak")
    strings = [
        scanning.keys.create(Actor.system("test"), project.id).key_string for _ in range(500)
    ]
    from llavero.core import keyformat

    strings += [keyformat.generate("llv") for _ in range(500)]
    body = json.dumps(
        [{"token": s, "type": "llavero_api_key", "url": "u", "source": "content"} for s in strings]
    ).encode()
    response = post(http, body, IDENTIFIER, sign(github_key, body))
    assert response.status_code == 200
    labels = [item["label"] for item in response.json()]
    assert labels == ["true_positive"] * 500 + ["false_positive"] * 500
    assert scanning.keys.count(Actor.system("test"), project.id) == 0


def test_a_key_github_rotates_in_is_read_when_it_first_signs(
    scanning: Llavero,
    http: TestClient,
    github_key: ec.EllipticCurvePrivateKey,
    tmp_path: Path,
    clock: FrozenClock,
) -> None:
    key_string = new_key(scanning)
    body = report_body(key_string)
    assert post(http, body, "new-key", sign(github_key, body)).status_code == 401  # unknown yet
    rotated_in = ec.generate_private_key(ec.SECP256R1())
    document = {
        "public_keys": [
            {"key_identifier": IDENTIFIER, "key": pem(github_key), "is_current": False},
            {"key_identifier": "new-key", "key": pem(rotated_in), "is_current": True},
        ]
    }
    (tmp_path / "github-keyformat.json").write_text(json.dumps(document))
    clock.advance(2)
    response = post(http, body, "new-key", sign(rotated_in, body))
    assert response.status_code == 200 and response.json()[0]["label"] == "true_positive"
    assert scanning.verifier.verify(VerifyRequest(key_string)).code == "DELETED"
