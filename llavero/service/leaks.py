"""Leaked key strings: what happens when a scanner (GitHub's secret scanning, gitleaks,
trufflehog, `llavero scan`, an admin) reports one (docs/leaks.md).

`Leaks.report` is the one place that acts on a leak: the key records where and when it was
found, the project's `leak_policy` runs (`revoke`: soft delete, `disable`, `notify`: nothing
more), an audit event is written and the change feed tells every instance, all in one
transaction. A leaked management token is revoked, whatever any policy says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from llavero.core import keyformat
from llavero.core.codes import State
from llavero.errors import FailedPrecondition, NotFound
from llavero.service import access, audit, events, models, projects
from llavero.service.apikeys import ApiKeys
from llavero.service.context import Actor, Context
from llavero.service.tokens import TOKEN_PREFIX, Tokens
from llavero.store import tables
from llavero.store.changes import KEY, TOKEN, record_change

KEY_TYPE = "llavero_api_key"
TOKEN_TYPE = "llavero_management_token"
URL_LENGTH = 2048
SOURCE_LENGTH = 100
CHUNK = 500  # hashes per IN (...): well under every backend's bound on parameters
Label = Literal["true_positive", "false_positive"]


@dataclass(frozen=True, slots=True)
class Match:
    """One string a scanner found, and where (GitHub's `{token, type, url, source}`)."""

    token: str
    type: str = KEY_TYPE
    url: str | None = None
    source: str | None = None

    @property
    def place(self) -> str | None:
        """Where it was found, cut to what the database keeps."""
        return (self.url or "")[:URL_LENGTH] or None

    @property
    def reporter(self) -> str | None:
        return (self.source or "")[:SOURCE_LENGTH] or None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a report found: GitHub's feedback item, and for a key of ours which one it is.

    `token_hash` is the SHA-256 of the reported string (GitHub's own identifier for it), never
    the string itself."""

    token_hash: str
    token_type: str
    label: Label
    kind: Literal["key", "token"] | None = None
    key_id: str | None = None
    project: str | None = None
    state: str | None = None
    action: str | None = None

    def feedback(self) -> dict[str, str]:
        return {"token_hash": self.token_hash, "token_type": self.token_type, "label": self.label}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Leaks:
    def __init__(self, ctx: Context, api_keys: ApiKeys, tokens: Tokens) -> None:
        self.ctx = ctx
        self._keys = api_keys
        self._tokens = tokens

    def report(self, actor: Actor, matches: Sequence[Match]) -> list[Verdict]:
        """Act on every match that is a live Llavero key or token; one verdict per match, in
        order. A string that is not ours, or that names nothing, is a false positive."""
        actor.require("keys:write")
        by_digest = {self.ctx.hasher.hash(m.token): m for m in matches if self._kind(m.token)}
        now = self.ctx.clock.now()
        acted: dict[str, Verdict] = {}
        with self.ctx.db.transaction() as session:
            for row, _ in _keys_by_hash(session, by_digest):
                if not self._may_change(session, actor, row):
                    continue  # not a project this actor may touch: as if the key did not exist
                if row.key_hash in by_digest:
                    match = by_digest[row.key_hash]
                    acted[row.key_hash] = self._leak_key(session, actor, row, match, now)
                if row.previous_hash is not None and row.previous_hash in by_digest:
                    match = by_digest[row.previous_hash]
                    acted[row.previous_hash] = self._leak_previous(session, actor, row, match, now)
            if actor.is_admin:
                for token_row in _tokens_by_hash(session, by_digest):
                    acted[token_row.token_hash] = self._leak_token(
                        session, actor, token_row, by_digest[token_row.token_hash], now
                    )
        for verdict in acted.values():
            if verdict.key_id is not None and verdict.kind == "key":
                self.ctx.cache.invalidate_key(verdict.key_id)
        if any(verdict.kind == "token" for verdict in acted.values()):
            self._tokens.forget()
        return [self._verdict_of(match, acted) for match in matches]

    def identify(self, actor: Actor, strings: Iterable[str]) -> dict[str, models.KeyLookup]:
        """Which key each well-formed key string belongs to (for `llavero scan`); read only."""
        actor.require("admin")
        digests = {self.ctx.hasher.hash(s): s for s in set(strings) if self._kind(s) == "key"}
        with self.ctx.db.reading() as session:
            return {
                digests[digest]: models.KeyLookup(
                    project=row.project_id, key=row.id, state=row.state
                )
                for row, digest in _keys_by_hash(session, digests)
            }

    def rotate(self, actor: Actor, key_id: str) -> models.CreatedKey:
        """The console's one-click answer to a leak: a revoked key comes back with a new
        string, the leaked one stops at once (no grace period) and the warning is cleared."""
        actor.require("keys:write")
        current = self._keys.get(actor, key_id)
        if current.leak is None:
            raise FailedPrecondition("the key has no reported leak", field="key")
        if current.state == State.DELETED:
            self._keys.undelete(actor, key_id)
        created = self._keys.rotate(actor, key_id, 0)
        with self.ctx.db.transaction() as session:
            row = session.get(tables.Key, key_id)
            if row is None:
                raise NotFound("the key no longer exists", field="key")
            row.leak_time = row.leak_url = row.leak_source = None
            record_change(session, self.ctx.clock, KEY, row.id)
            audit.record(
                session, self.ctx, actor, "key.leak_resolved", row.id, project=row.project_id
            )
        self.ctx.cache.invalidate_key(key_id)
        return created.model_copy(update={"key": created.key.model_copy(update={"leak": None})})

    def _kind(self, token: str) -> Literal["key", "token"] | None:
        if keyformat.is_well_formed(token, self.ctx.key_prefix):
            return "key"
        if keyformat.is_well_formed(token, TOKEN_PREFIX):
            return "token"
        return None

    def _may_change(self, session: Session, actor: Actor, row: tables.Key) -> bool:
        """Whoever may see the key and holds its string may report it: a leak is worth knowing
        about from anyone, and the project's owner chose what a report does."""
        try:
            projects.load(session, actor, row.project_id, access.READ)
        except NotFound:
            return False
        return True

    def _leak_key(
        self, session: Session, actor: Actor, row: tables.Key, match: Match, now: datetime
    ) -> Verdict:
        """The key's current string leaked: record where, apply the project's policy. The one
        hook for anything else a leak should set off (a `key.leaked` event)."""
        project = session.get(tables.Project, row.project_id)
        policy = project.leak_policy if project is not None else "revoke"
        row.leak_time, row.update_time = now, now
        row.leak_url, row.leak_source = match.place, match.reporter
        action = _apply_policy(row, policy, now)
        record_change(session, self.ctx.clock, KEY, row.id)
        audit.record(
            session,
            self.ctx,
            actor,
            "key.leak",
            row.id,
            project=row.project_id,
            policy=policy,
            effect=action,
            url=row.leak_url,
            source=row.leak_source,
        )
        events.key_leaked(
            session, self.ctx, row, url=row.leak_url, source=row.leak_source, action=action
        )
        return _key_verdict(row, match, action)

    def _leak_previous(
        self, session: Session, actor: Actor, row: tables.Key, match: Match, now: datetime
    ) -> Verdict:
        """The string a rotation replaced leaked: its grace period ends now. The key's current
        string is not the leaked one, so the policy leaves it alone (a report that comes again
        after the one-click rotation must not revoke the new string)."""
        action = "none"
        if row.previous_expire_time is not None and row.previous_expire_time > now:
            row.previous_expire_time, row.update_time, action = now, now, "end_grace"
            record_change(session, self.ctx.clock, KEY, row.id)
        audit.record(
            session,
            self.ctx,
            actor,
            "key.leak",
            row.id,
            project=row.project_id,
            string="previous",
            effect=action,
            url=match.place,
            source=match.reporter,
        )
        return _key_verdict(row, match, action)

    def _leak_token(
        self, session: Session, actor: Actor, row: tables.Token, match: Match, now: datetime
    ) -> Verdict:
        action = "none"
        if row.revoke_time is None:
            row.revoke_time, action = now, "revoke"
            record_change(session, self.ctx.clock, TOKEN, row.id)
        audit.record(
            session,
            self.ctx,
            actor,
            "token.leak",
            f"token/{row.id}",
            effect=action,
            url=match.place,
            source=match.reporter,
        )
        return Verdict(
            token_hash=token_hash(match.token),
            token_type=match.type,
            label="true_positive",
            kind="token",
            key_id=row.id,
            state="REVOKED",
            action=action,
        )

    def _verdict_of(self, match: Match, acted: dict[str, Verdict]) -> Verdict:
        found = acted.get(self.ctx.hasher.hash(match.token)) if self._kind(match.token) else None
        if found is not None:
            return found
        return Verdict(token_hash(match.token), match.type, "false_positive")


def _key_verdict(row: tables.Key, match: Match, action: str) -> Verdict:
    return Verdict(
        token_hash=token_hash(match.token),
        token_type=match.type,
        label="true_positive",
        kind="key",
        key_id=row.id,
        project=row.project_id,
        state=row.state,
        action=action,
    )


def _apply_policy(row: tables.Key, policy: str, now: datetime) -> str:
    """The project's leak policy on one key; returns what it did (for the audit trail)."""
    if row.state == State.DELETED:
        return "none"
    if policy == "revoke":
        row.state_before_delete, row.state, row.delete_time = row.state, State.DELETED, now
        return "revoke"
    if policy == "disable" and row.state == State.ACTIVE:
        row.state = State.DISABLED
        return "disable"
    return "none"


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _keys_by_hash(session: Session, digests: Iterable[str]) -> list[tuple[tables.Key, str]]:
    """Keys whose current or previous (rotated, in grace) string has one of these hashes, each
    with the hash that matched; a key matched twice comes once."""
    wanted = list(dict.fromkeys(digests))
    found: dict[str, tuple[tables.Key, str]] = {}
    for chunk in _chunks(wanted):
        rows = session.scalars(
            select(tables.Key).where(
                or_(tables.Key.key_hash.in_(chunk), tables.Key.previous_hash.in_(chunk))
            )
        ).all()
        chosen = set(chunk)
        for row in rows:
            digest = row.key_hash if row.key_hash in chosen else str(row.previous_hash)
            found.setdefault(row.id, (row, digest))
    return list(found.values())


def _tokens_by_hash(session: Session, digests: Iterable[str]) -> list[tables.Token]:
    wanted = list(dict.fromkeys(digests))
    rows: list[tables.Token] = []
    for chunk in _chunks(wanted):
        rows.extend(
            session.scalars(select(tables.Token).where(tables.Token.token_hash.in_(chunk))).all()
        )
    return rows
