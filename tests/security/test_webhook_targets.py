"""Webhook URLs are a server-side request on the user's behalf (SSRF): only http and https,
no credentials or fragments, no control characters, and `LLAVERO_WEBHOOK_ALLOWED_HOSTS`
restricts the hosts, checked again at send time."""

from __future__ import annotations

import pytest

from llavero.errors import InvalidArgument
from llavero.service import Actor, Llavero
from llavero.service.webhooks import check_url, host_allowed


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "javascript:alert(1)",
        "http://",
        "https://user:pass@example.com/hook",
        "https://example.com/hook#frag",
        "https://example.com/ho ok",
        "https://example.com/\r\nX-Injected: 1",
        "https://example.com/\x00",
        "//example.com/hook",
        "",
        "https://" + "a" * 2100 + ".com/",
    ],
)
def test_refused_urls_name_the_field(url: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_url(url, [])
    assert refused.value.field == "url"
    assert "\r" not in refused.value.message and "\x00" not in refused.value.message


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("hooks.example.com", True),
        ("HOOKS.Example.COM.", True),
        ("a.b.example.com", True),
        ("example.com", False),  # "*.example.com" is the subdomains only
        ("evilexample.com", False),
        ("example.com.evil.net", False),
        ("127.0.0.1", False),
        ("exact.test", True),
    ],
)
def test_allowed_hosts(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["*.example.com", "exact.test"]) is allowed


def test_the_allow_list_refuses_at_creation_and_at_send_time(llavero: Llavero) -> None:
    admin = Actor.system("test")
    created = llavero.webhooks.create(admin, "http://127.0.0.1:9/hook", ["*"])
    llavero.settings.webhook_allowed_hosts = ["*.example.com"]
    with pytest.raises(InvalidArgument):
        llavero.webhooks.create(admin, "http://127.0.0.1:9/hook", ["*"])
    llavero.webhooks.send_test(admin, created.webhook.id)
    llavero.dispatcher.run_once()
    (delivery,) = llavero.webhooks.deliveries(admin, created.webhook.id).items
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_status is None
    assert "LLAVERO_WEBHOOK_ALLOWED_HOSTS" in (delivery.last_error or "")
