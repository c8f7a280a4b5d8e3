"""Management tokens: hashed like keys, scoped, revocable; authenticated on every API call."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from llavero.core import keyformat
from llavero.errors import FailedPrecondition, InvalidArgument, Unauthenticated
from llavero.service import audit, models, validation
from llavero.service.context import SCOPES, Actor, Context
from llavero.store import tables
from llavero.store.changes import TOKEN, record_change

TOKEN_PREFIX = "llvtok"


@dataclass(frozen=True, slots=True)
class _Cached:
    actor: Actor
    expire: float | None
    stale_at: float  # monotonic: read again after `cache_ttl_seconds`, whatever the feed says


def to_model(row: tables.Token) -> models.Token:
    return models.Token(
        id=row.id,
        display_name=row.display_name,
        last4=row.last4,
        scopes=list(row.scopes),
        created_by=row.created_by,
        create_time=row.create_time,
        expire_time=row.expire_time,
        revoke_time=row.revoke_time,
        last_used_time=row.last_used_time,
    )


class Tokens:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._cache: dict[bytes, _Cached] = {}  # by `KeyHasher.digest`: no hex per verify
        self._generation = 0  # bumped by every revocation: a load that raced one is not kept

    def create(
        self,
        actor: Actor,
        scopes: Iterable[str],
        display_name: str = "management token",
        expire_time: datetime | str | None = None,
    ) -> models.CreatedToken:
        actor.require("admin")
        wanted = sorted(set(scopes))
        if not wanted:
            raise InvalidArgument("give at least one scope", field="scope")
        for scope in wanted:
            if scope not in SCOPES:
                raise InvalidArgument(f"must be one of {', '.join(SCOPES)}", field="scope")
        name = validation.display_name(display_name)
        now = self.ctx.clock.now()
        expires = validation.future_time(expire_time, now)
        token = keyformat.generate(TOKEN_PREFIX)
        with self.ctx.db.transaction() as session:
            row = tables.Token(
                id=str(uuid.uuid4()),
                display_name=name,
                token_hash=self.ctx.hasher.hash(token),
                last4=keyformat.last4(token),
                scopes=wanted,
                created_by=actor.name,
                create_time=now,
                expire_time=expires,
                revoke_time=None,
                last_used_time=None,
            )
            session.add(row)
            audit.record(session, self.ctx, actor, "token.create", f"token/{row.id}", scopes=wanted)
            return models.CreatedToken(token_info=to_model(row), token=token)

    def list(self, actor: Actor) -> list[models.Token]:
        actor.require("admin")
        with self.ctx.db.reading() as session:
            rows = session.scalars(select(tables.Token).order_by(tables.Token.create_time)).all()
            return [to_model(row) for row in rows]

    def revoke(self, actor: Actor, token_id: str) -> models.Token:
        actor.require("admin")
        with self.ctx.db.transaction() as session:
            row = session.get(tables.Token, token_id)
            if row is None:
                raise validation.not_found("token", token_id, "token")
            if row.revoke_time is not None:
                raise FailedPrecondition("the token is already revoked", field="token")
            row.revoke_time = self.ctx.clock.now()
            record_change(session, self.ctx.clock, TOKEN, row.id)
            audit.record(session, self.ctx, actor, "token.revoke", f"token/{row.id}")
            result = to_model(row)
        self.forget()
        return result

    def authenticate(self, token: str, ip: str | None = None) -> Actor:
        """Cached by hash: a verifier's token is checked on every verify."""
        actor = self.cached(token)
        if actor is None:
            actor = self._authenticated(token)
        return actor if ip is None else actor.with_ip(ip)

    def cached(self, token: str) -> Actor | None:
        """The actor of a token this process has already authenticated and that is still
        valid, with no I/O (None otherwise): the verify fast path answers only then and leaves
        everything else, errors included, to `authenticate`. One Python frame: the fast path
        calls it on every verify (bench/notes.md, item 14)."""
        cached = self._cache.get(self.ctx.hasher.digest(token))
        clock = self.ctx.clock
        if (
            cached is None
            or cached.stale_at <= clock.monotonic()
            or (cached.expire is not None and cached.expire <= clock.time())
        ):
            return None
        return cached.actor

    def forget(self) -> None:
        """Called on a revocation here and by the change feed for one on another instance."""
        self._generation += 1
        self._cache.clear()

    def _authenticated(self, token: str) -> Actor:
        """The actor of a token not cached, or not fresh, read from the database."""
        if not keyformat.is_well_formed(token, TOKEN_PREFIX):
            raise Unauthenticated("the bearer token is not a Llavero management token")
        cached = self._load(self.ctx.hasher.digest(token))
        if cached.expire is not None and cached.expire <= self.ctx.clock.time():
            raise Unauthenticated("the management token has expired")
        return cached.actor

    def _load(self, digest: bytes) -> _Cached:
        generation = self._generation
        token_hash = digest.hex()  # as stored: `KeyHasher.hash`
        with self.ctx.db.reading() as session:
            row = session.scalar(select(tables.Token).where(tables.Token.token_hash == token_hash))
        if row is None or row.revoke_time is not None:
            raise Unauthenticated("the management token is unknown or revoked")
        actor = Actor(f"token:{row.id}", frozenset(row.scopes))
        expire = row.expire_time.timestamp() if row.expire_time else None
        stale_at = self.ctx.clock.monotonic() + self.ctx.settings.cache_ttl_seconds
        cached = _Cached(actor, expire, stale_at)
        if len(self._cache) > 10_000:
            self._cache.clear()
        if generation == self._generation:
            self._cache[digest] = cached
        return cached
