"""Alerts without a webhook: the owners of a project get the email, through a real SMTP server
on loopback (aiosmtpd), in the language of `LLAVERO_SMTP_LANGUAGE`."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero
from llavero.service.context import MEMBER_SCOPES
from tests.cli.test_cli import free_port
from tests.conftest import make_service


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        self.messages.append(email.message_from_bytes(raw, policy=default_policy))
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def owned_key(llavero: Llavero, clock: FrozenClock) -> tuple[str, str]:
    admin = Actor.system("test")
    user = llavero.users.create(admin, "duena@example.com", "a long enough password 123")
    owner = Actor(user.email, MEMBER_SCOPES, user_id=user.id)
    project = llavero.projects.create(owner, "Pagos").id
    created = llavero.keys.create(
        owner, project, display_name="servidor", expire_time=clock.now() + timedelta(days=5)
    )
    return project, created.key_string


@pytest.mark.parametrize(
    ("language", "subject", "line"),
    [
        ("es_419", "Llavero: una clave de API vence pronto", "vence en 7 día(s)"),
        ("en", "Llavero: an API key expires soon", "expires in 7 day(s)"),
    ],
)
def test_the_owner_gets_the_expiring_key_email(
    settings: Settings,
    clock: FrozenClock,
    inbox: tuple[Inbox, int],
    language: str,
    subject: str,
    line: str,
) -> None:
    handler, port = inbox
    smtp = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_language": language}
    for llavero in make_service(settings.model_copy(update=smtp), clock):
        project, key_string = owned_key(llavero, clock)
        llavero.alerts.check()
        llavero.dispatcher.run_once()
        llavero.alerts.check()  # told once
        llavero.dispatcher.run_once()
    (message,) = handler.messages
    assert message["To"] == "duena@example.com"
    assert message["Subject"] == subject
    text = message.get_content()
    assert line in text and '"servidor"' in text and project in text
    assert key_string not in message.as_string()


def test_without_smtp_or_webhook_nothing_is_queued(llavero: Llavero, clock: FrozenClock) -> None:
    owned_key(llavero, clock)
    assert llavero.alerts.check() == 0
    assert llavero.dispatcher.run_once() == 0
