"""Sending the outbox: each queued delivery to its webhook (signed to Standard Webhooks) or its
email address, at least once, with backoff, in order per target.

A target's deliveries go out one at a time in id order: only a target's oldest pending delivery
(its head) is ever sent, and an instance sends it only after winning it with a conditional
UPDATE that sets a lease (`lease_until`), so with several instances each delivery is sent by one
of them. A process killed mid-send leaves the lease to run out; the next instance sends again
(receivers deduplicate by `webhook-id`). After the last wait of `LLAVERO_WEBHOOK_RETRY_SECONDS`
the delivery fails for good and its webhook is disabled, which is itself an event
(`webhook.disabled`). See docs/webhooks.md.
"""

from __future__ import annotations

import json
import logging
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Final

import httpx
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook as Signer

from llavero import __version__
from llavero.console import alerts_email
from llavero.core.background import Periodic
from llavero.service import audit, events
from llavero.service.context import Actor, Context
from llavero.service.webhooks import host_allowed
from llavero.store import tables

log = logging.getLogger("llavero.delivery")

LEASE_MARGIN_SECONDS: Final = 30.0
LOG_DAYS: Final = 30  # delivered and failed deliveries are kept this long (docs/webhooks.md)
PRUNE_EVERY: Final = timedelta(hours=1)
MAX_ROUNDS: Final = 1000
USER_AGENT: Final = f"Llavero-Webhooks/{__version__}"
DELIVERY_ACTOR: Final = Actor.system("delivery")


class Outcome:
    """What one attempt came to: `status` is the HTTP status (None for email or no answer)."""

    __slots__ = ("error", "ok", "status")

    def __init__(self, ok: bool, status: int | None = None, error: str | None = None) -> None:
        self.ok, self.status, self.error = ok, status, error


def serialize(body: dict[str, object]) -> str:
    """The exact bytes that are signed and sent."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def signed_headers(secret: str, event_id: str, payload: str, now: datetime) -> dict[str, str]:
    signature = Signer(secret).sign(msg_id=event_id, timestamp=now, data=payload)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class Dispatcher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self._client = httpx.Client(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        )
        self._lease = timedelta(seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
        self._thread = Periodic(
            "llavero-deliveries", settings.webhook_poll_seconds, self._tick, log
        )
        self._next_prune: datetime | None = None

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._thread.stop()
        self._client.close()

    def _tick(self) -> None:
        self.run_once()
        now = self.ctx.clock.now()
        if self._next_prune is None or now >= self._next_prune:
            self.prune(now)
            self._next_prune = now + PRUNE_EVERY

    def prune(self, now: datetime) -> int:
        """Forget deliveries done more than `LOG_DAYS` ago, then events with none left, then
        alert marks no check can meet again; returns how many deliveries went."""
        cutoff = now - timedelta(days=LOG_DAYS)
        delivery, event = tables.Delivery, tables.Event
        with self.ctx.db.transaction() as session:
            gone = session.execute(
                delete(delivery).where(
                    delivery.status != events.PENDING, delivery.create_time < cutoff
                )
            ).rowcount  # type: ignore[attr-defined]
            orphan = ~select(delivery.id).where(delivery.event_id == event.id).exists()
            session.execute(delete(event).where(event.create_time < cutoff, orphan))
            session.execute(
                delete(tables.AlertMark).where(tables.AlertMark.time < cutoff - timedelta(days=10))
            )
        return int(gone)

    def run_once(self) -> int:
        """Send every delivery that is due, head after head; returns how many attempts."""
        attempts = 0
        for _ in range(MAX_ROUNDS):
            sent = 0
            for delivery_id in self._due_heads():
                if self._claim(delivery_id):
                    self._attempt(delivery_id)
                    sent += 1
            attempts += sent
            if not sent:
                break
        return attempts

    # --- choosing and claiming -------------------------------------------------------------

    def _due_heads(self) -> list[int]:
        now = self.ctx.clock.now()
        delivery = tables.Delivery
        heads = (
            select(func.min(delivery.id))
            .where(delivery.status == events.PENDING)
            .group_by(delivery.target)
        )
        enabled = select(tables.Webhook.id).where(tables.Webhook.disabled.is_(False))
        query = (
            select(delivery.id)
            .where(
                delivery.id.in_(heads),
                delivery.next_attempt_time <= now,
                or_(delivery.lease_until.is_(None), delivery.lease_until < now),
                or_(delivery.webhook_id.is_(None), delivery.webhook_id.in_(enabled)),
            )
            .order_by(delivery.id)
        )
        with self.ctx.db.reading() as session:
            return list(session.scalars(query))

    def _claim(self, delivery_id: int) -> bool:
        """Win the delivery for this process: one conditional UPDATE, true for one instance."""
        now = self.ctx.clock.now()
        delivery = tables.Delivery
        with self.ctx.db.transaction() as session:
            result = session.execute(
                update(delivery)
                .where(
                    delivery.id == delivery_id,
                    delivery.status == events.PENDING,
                    or_(delivery.lease_until.is_(None), delivery.lease_until < now),
                )
                .values(lease_until=now + self._lease)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    # --- sending ---------------------------------------------------------------------------

    def _attempt(self, delivery_id: int) -> None:
        with self.ctx.db.reading() as session:
            row = session.get(tables.Delivery, delivery_id)
            assert row is not None
            event = session.get(tables.Event, row.event_id)
            webhook = session.get(tables.Webhook, row.webhook_id) if row.webhook_id else None
        assert event is not None
        if row.target.startswith(events.EMAIL_TARGET):
            outcome = self._send_email(row.target.removeprefix(events.EMAIL_TARGET), event)
        elif webhook is None:
            outcome = Outcome(False, error="the webhook no longer exists")
        else:
            outcome = self._send_webhook(webhook, event)
        self._record(delivery_id, outcome)

    def _send_webhook(self, webhook: tables.Webhook, event: tables.Event) -> Outcome:
        host = httpx.URL(webhook.url).host
        if not host_allowed(host, self.ctx.settings.webhook_allowed_hosts):
            return Outcome(False, error="LLAVERO_WEBHOOK_ALLOWED_HOSTS does not allow this host")
        payload = serialize(event.body)
        headers = signed_headers(webhook.secret, event.event_id, payload, datetime.now(UTC))
        try:
            answer = self._client.post(webhook.url, content=payload.encode(), headers=headers)
        except httpx.HTTPError as error:
            return Outcome(False, error=type(error).__name__)
        if 200 <= answer.status_code < 300:
            return Outcome(True, answer.status_code)
        return Outcome(False, answer.status_code, f"HTTP {answer.status_code}")

    def _send_email(self, address: str, event: tables.Event) -> Outcome:
        settings = self.ctx.settings
        if not settings.smtp_host:
            return Outcome(False, error="LLAVERO_SMTP_HOST is not set")
        subject, text = alerts_email.render(settings.smtp_language, event.body)
        message = EmailMessage()
        message["From"] = settings.smtp_sender
        message["To"] = address
        message["Subject"] = subject
        message["Message-ID"] = f"<{event.event_id}@llavero>"
        message.set_content(text)
        try:
            with smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.webhook_timeout_seconds
            ) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls()
                if settings.smtp_username:
                    smtp.login(settings.smtp_username, settings.smtp_password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            return Outcome(False, error=type(error).__name__)
        return Outcome(True)

    # --- recording -------------------------------------------------------------------------

    def _record(self, delivery_id: int, outcome: Outcome) -> None:
        now = self.ctx.clock.now()
        schedule = self.ctx.settings.webhook_retry_seconds
        with self.ctx.db.transaction() as session:
            row = session.get(tables.Delivery, delivery_id, with_for_update=True)
            assert row is not None
            row.attempts += 1
            row.last_attempt_time = now
            row.last_status = outcome.status
            row.last_error = None if outcome.ok else (outcome.error or "")[:300]
            row.lease_until = None
            if outcome.ok:
                row.status = events.DELIVERED
                row.delivered_time = now
            elif row.attempts <= len(schedule):
                row.next_attempt_time = now + timedelta(seconds=schedule[row.attempts - 1])
            else:
                row.status = events.FAILED
                if row.webhook_id is not None:
                    self._disable(session, row)
            if not outcome.ok:
                log.warning(
                    "delivery %s to %s failed (attempt %s): %s",
                    row.id,
                    row.target,
                    row.attempts,
                    row.last_error,
                )

    def _disable(self, session: Session, row: tables.Delivery) -> None:
        """Persistent failure: the endpoint stops receiving, and that is an event too."""
        webhook = session.get(tables.Webhook, row.webhook_id, with_for_update=True)
        if webhook is None or webhook.disabled:
            return
        webhook.disabled = True
        webhook.disabled_reason = f"{row.attempts} failed attempts ({row.last_error})"[:300]
        webhook.update_time = self.ctx.clock.now()
        session.flush()
        audit.record(
            session,
            self.ctx,
            DELIVERY_ACTOR,
            "webhook.disable",
            f"webhook/{webhook.id}",
            project=webhook.project_id,
            reason=webhook.disabled_reason,
        )
        data = {
            "webhook_id": webhook.id,
            "project": webhook.project_id,
            "url": webhook.url,
            "reason": webhook.disabled_reason,
        }
        events.emit(session, self.ctx, events.WEBHOOK_DISABLED, data, project=webhook.project_id)
