"""`llavero.asgi.serving_app`, the app `llavero serve` hands to granian: built from LLAVERO_*,
and it reads X-Forwarded-For only from the proxies in LLAVERO_TRUSTED_PROXIES (never from
uvicorn's FORWARDED_ALLOW_IPS, which it used to follow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llavero.asgi import serving_app
from llavero.config import Settings
from llavero.service import Actor, Llavero
from tests.loopback import serve

CLIENT = "198.51.100.9"


@pytest.fixture
def admin_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LLAVERO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LLAVERO_CHANGE_POLL_SECONDS", "0")
    llavero = Llavero(Settings())
    llavero.upgrade()
    yield llavero.tokens.create(Actor.system(), ["admin"]).token
    llavero.close()
    llavero.db.dispose()


def audited_ip(proxies: str, admin_token: str, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The source address the audit log records for a project made from 127.0.0.1 through
    `proxies` (LLAVERO_TRUSTED_PROXIES); FORWARDED_ALLOW_IPS says to trust everyone."""
    monkeypatch.setenv("LLAVERO_TRUSTED_PROXIES", proxies)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    headers = {"Authorization": f"Bearer {admin_token}", "X-Forwarded-For": CLIENT}
    with serve(serving_app()) as base, httpx.Client(base_url=base) as client:
        created = client.post("/v1/projects", json={"display_name": "Proxied"}, headers=headers)
        assert created.status_code == 200
        target = f"project/{created.json()['id']}"
        events = client.get("/v1/audit", params={"target": target}, headers=headers).json()
    source_ip: str | None = events["audit_events"][0]["source_ip"]
    return source_ip


def test_a_trusted_proxy_gives_the_client_address(
    admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert audited_ip('["127.0.0.1"]', admin_token, monkeypatch) == CLIENT


def test_an_untrusted_peer_cannot_claim_an_address(
    admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert audited_ip("[]", admin_token, monkeypatch) == "127.0.0.1"
    assert audited_ip('["10.0.0.0/8"]', admin_token, monkeypatch) == "127.0.0.1"
