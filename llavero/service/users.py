"""Console users: Argon2id passwords, roles, one-time sign-in links, throttled sign-in."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from llavero import models
from llavero.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
)
from llavero.service import audit
from llavero.service.context import MEMBER_SCOPES, Actor, Context
from llavero.store import tables

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}")
ROLES = ("admin", "member")
MIN_PASSWORD = 10
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LINK_TTL = timedelta(hours=24)
_passwords = PasswordHasher()  # Argon2id with the library's current recommended parameters


def _link_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(value: object) -> str:
    if not isinstance(value, str) or not EMAIL.fullmatch(value.strip()):
        raise InvalidArgument("must be an email address", field="email")
    return value.strip().lower()


def check_password(value: object) -> str:
    if not isinstance(value, str) or len(value) < MIN_PASSWORD:
        raise InvalidArgument(f"must be at least {MIN_PASSWORD} characters", field="password")
    if len(value) > 1024:
        raise InvalidArgument("must be at most 1024 characters", field="password")
    return value


def to_model(row: tables.User) -> models.User:
    return models.User(
        id=row.id,
        email=row.email,
        role=row.role,
        disabled=row.disabled,
        create_time=row.create_time,
        last_signin_time=row.last_signin_time,
    )


def actor_for(user: models.User, ip: str | None = None) -> Actor:
    if user.role == "admin":
        return Actor(f"user:{user.email}", frozenset({"admin"}), user.id, ip)
    return Actor(f"user:{user.email}", MEMBER_SCOPES, user.id, ip)


class Users:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def count(self) -> int:
        with self.ctx.db.reading() as session:
            return session.scalar(select(func.count()).select_from(tables.User)) or 0

    def create(
        self, actor: Actor, email: str, password: str | None, role: str = "member"
    ) -> models.User:
        actor.require("admin")
        address = normalize_email(email)
        if role not in ROLES:
            raise InvalidArgument("must be admin or member", field="role")
        password_hash = _passwords.hash(check_password(password)) if password else None
        try:
            with self.ctx.db.transaction() as session:
                row = tables.User(
                    email=address,
                    password_hash=password_hash,
                    role=role,
                    disabled=False,
                    create_time=self.ctx.clock.now(),
                )
                session.add(row)
                session.flush()
                audit.record(session, self.ctx, actor, "user.create", f"user/{address}", role=role)
                return to_model(row)
        except IntegrityError:
            raise AlreadyExists(f"a user with email {address!r} exists", field="email") from None

    def list(self, actor: Actor) -> list[models.User]:
        actor.require("admin")
        with self.ctx.db.reading() as session:
            rows = session.scalars(select(tables.User).order_by(tables.User.email)).all()
            return [to_model(row) for row in rows]

    def get(self, user_id: int) -> models.User:
        with self.ctx.db.reading() as session:
            row = session.get(tables.User, user_id)
            if row is None:
                raise NotFound("no such user", field="user")
            return to_model(row)

    def update(
        self,
        actor: Actor,
        user_id: int,
        *,
        role: str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> models.User:
        """Admins change anyone; a user may change only their own password."""
        if role is not None or disabled is not None or actor.user_id != user_id:
            actor.require("admin")
        if role is not None and role not in ROLES:
            raise InvalidArgument("must be admin or member", field="role")
        new_hash = _passwords.hash(check_password(password)) if password is not None else None
        with self.ctx.db.transaction() as session:
            row = session.get(tables.User, user_id)
            if row is None:
                raise NotFound("no such user", field="user")
            changed: list[str] = []
            if role is not None:
                row.role, changed = role, [*changed, "role"]
            if disabled is not None:
                row.disabled, changed = disabled, [*changed, "disabled"]
                if disabled:
                    session.execute(
                        delete(tables.ConsoleSession).where(tables.ConsoleSession.user_id == row.id)
                    )
            if new_hash is not None:
                row.password_hash, changed = new_hash, [*changed, "password"]
            audit.record(
                session, self.ctx, actor, "user.update", f"user/{row.email}", fields=changed
            )
            return to_model(row)

    def authenticate(self, email: str, password: str, ip: str | None = None) -> models.User:
        """Same answer for an unknown email and a wrong password; throttled per email."""
        address = email.strip().lower() if isinstance(email, str) else ""
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            failures = session.scalar(
                select(func.count())
                .select_from(tables.SigninFailure)
                .where(
                    tables.SigninFailure.email == address,
                    tables.SigninFailure.time > now - FAILURE_WINDOW,
                )
            )
            if (failures or 0) >= MAX_FAILURES:
                raise ResourceExhausted("too many failed sign-ins; try again in 15 minutes")
            row = session.scalar(select(tables.User).where(tables.User.email == address))
            if row is None or row.disabled or not _password_matches(row.password_hash, password):
                session.add(tables.SigninFailure(email=address, ip=ip, time=now))
                # Commit the failure, then refuse: the count must survive the refusal.
                session.commit()
                raise Unauthenticated("wrong email or password")
            row.last_signin_time = now
            session.execute(
                delete(tables.SigninFailure).where(tables.SigninFailure.email == address)
            )
            actor = actor_for(to_model(row), ip)
            audit.record(session, self.ctx, actor, "user.signin", f"user/{address}")
            return to_model(row)

    def create_signin_link(self, actor: Actor, user_id: int, ttl: timedelta = LINK_TTL) -> str:
        """A one-time secret for a sign-in URL: the first run, or an invitation."""
        actor.require("admin")
        token = secrets.token_urlsafe(32)
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            row = session.get(tables.User, user_id)
            if row is None:
                raise NotFound("no such user", field="user")
            session.add(
                tables.SigninLink(
                    token_hash=_link_hash(token),
                    user_id=user_id,
                    create_time=now,
                    expire_time=now + ttl,
                    used_time=None,
                )
            )
            audit.record(session, self.ctx, actor, "user.signin_link", f"user/{row.email}")
        return token

    def redeem_signin_link(self, token: str, ip: str | None = None) -> models.User:
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            link = session.get(tables.SigninLink, _link_hash(token)) if token else None
            if link is None or link.used_time is not None or link.expire_time <= now:
                raise Unauthenticated("this sign-in link is invalid, used or expired")
            row = session.get(tables.User, link.user_id)
            if row is None or row.disabled:
                raise Unauthenticated("this sign-in link is invalid, used or expired")
            link.used_time = now
            row.last_signin_time = now
            user = to_model(row)
            audit.record(
                session, self.ctx, actor_for(user, ip), "user.signin_link_used", f"user/{row.email}"
            )
            return user


def _password_matches(password_hash: str | None, password: str) -> bool:
    if not password_hash or not isinstance(password, str):
        _passwords.hash("equal-work-for-unknown-users")
        return False
    try:
        return _passwords.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
