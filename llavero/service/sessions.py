"""Console sessions: server-side rows keyed by a hash of the cookie value, each with its own
CSRF token. Signing out, or disabling the user, deletes the row: the cookie is then worthless."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from llavero.service import members, models, users
from llavero.service.context import Actor, Context
from llavero.store import tables

SESSION_TTL = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=5)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: models.User
    csrf_token: str

    def actor(self, ip: str | None = None) -> Actor:
        return users.actor_for(self.user, ip)


class Sessions:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(self, user: models.User, ip: str | None = None) -> tuple[str, SignedIn]:
        """A new session for a user who just proved who they are; returns the cookie value."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            row = session.get(tables.User, user.id)
            if row is not None:
                members.claim_invitations(session, self.ctx, row)
            session.add(
                tables.ConsoleSession(
                    id_hash=_hash(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    create_time=now,
                    expire_time=now + SESSION_TTL,
                    last_seen_time=now,
                    ip=ip,
                )
            )
        return token, SignedIn(user, csrf)

    def resume(self, token: str | None) -> SignedIn | None:
        """The signed-in user of a cookie, or None when it is unknown, expired or disabled."""
        if not token:
            return None
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            row = session.get(tables.ConsoleSession, _hash(token))
            if row is None:
                return None
            user = session.get(tables.User, row.user_id)
            if row.expire_time <= now or user is None or user.disabled:
                session.delete(row)
                return None
            if now - row.last_seen_time > TOUCH_EVERY:
                row.last_seen_time = now
            return SignedIn(users.to_model(user), row.csrf_token)

    def end(self, token: str | None) -> None:
        if not token:
            return
        with self.ctx.db.transaction() as session:
            session.execute(
                delete(tables.ConsoleSession).where(tables.ConsoleSession.id_hash == _hash(token))
            )
