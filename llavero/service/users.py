"""Console users: Argon2id passwords, roles, one-time sign-in links, throttled sign-in
(docs/security.md, "Sign-in races" and "Account enumeration and throttling")."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from llavero.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from llavero.service import audit, models
from llavero.service.context import MEMBER_SCOPES, Actor, Context
from llavero.service.throttle import IP_LENGTH, SigninThrottle, Throttle
from llavero.store import tables

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}")
ROLES = ("admin", "member")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_LINK_TOKEN = 128
WRONG_CREDENTIALS = "wrong email or password"
BAD_LINK = "this sign-in link is invalid, used or expired"
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
    if len(value) > MAX_PASSWORD:
        raise InvalidArgument(f"must be at most {MAX_PASSWORD} characters", field="password")
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
        self.throttle = Throttle(ctx)

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
        """One answer, and one Argon2 verify, for an unknown email, a disabled user, a user
        without a password and a wrong password; the attempt is counted before the verify
        (`llavero.service.throttle`), per email and client address."""
        address = signin_address(email)
        if address is None:  # cannot be an account: nothing to count or store
            _password_matches(None, password)
            raise Unauthenticated(WRONG_CREDENTIALS)
        self.throttle.claim(address, ip)
        with self.ctx.db.reading() as session:
            row = session.scalar(select(tables.User).where(tables.User.email == address))
            stored = row.password_hash if row is not None and not row.disabled else None
        if not _password_matches(stored, password):
            raise Unauthenticated(WRONG_CREDENTIALS)
        with self.ctx.db.transaction() as session:
            row = session.scalar(select(tables.User).where(tables.User.email == address))
            if row is None or row.disabled:  # disabled while its password was checked
                raise Unauthenticated(WRONG_CREDENTIALS)
            row.last_signin_time = self.ctx.clock.now()
            self.throttle.clear(session, address, ip)
            actor = actor_for(to_model(row), ip)
            audit.record(session, self.ctx, actor, "user.signin", f"user/{address}")
            return to_model(row)

    def throttles(self, actor: Actor, email: str | None = None) -> Sequence[SigninThrottle]:
        """Sign-in attempts counted in the last day, per email and client address."""
        actor.require("admin")
        return self.throttle.list(None if email is None else normalize_email(email))

    def clear_throttle(self, actor: Actor, email: str, ip: str | None = None) -> int:
        """Let `email` sign in again at once (from `ip` only, when given); how many cleared."""
        actor.require("admin")
        address = normalize_email(email)
        if ip is not None and (not isinstance(ip, str) or len(ip) > IP_LENGTH):
            raise InvalidArgument(
                f"must be an address of at most {IP_LENGTH} characters", field="ip"
            )
        with self.ctx.db.transaction() as session:
            cleared = self.throttle.clear(session, address, ip)
            audit.record(
                session,
                self.ctx,
                actor,
                "user.throttle_clear",
                f"user/{address}",
                ip=ip,
                cleared=cleared,
            )
        return cleared

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
        """Claimed by one conditional UPDATE: of N concurrent redemptions exactly one wins."""
        if not isinstance(token, str) or not token or len(token) > MAX_LINK_TOKEN:
            raise Unauthenticated(BAD_LINK)
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            claimed = session.execute(
                update(tables.SigninLink)
                .where(
                    tables.SigninLink.token_hash == _link_hash(token),
                    tables.SigninLink.used_time.is_(None),
                    tables.SigninLink.expire_time > now,
                )
                .values(used_time=now)
                .returning(tables.SigninLink.user_id)
            ).scalar_one_or_none()
            row = None if claimed is None else session.get(tables.User, claimed)
            if row is None or row.disabled:  # raising rolls the claim back
                raise Unauthenticated(BAD_LINK)
            row.last_signin_time = now
            user = to_model(row)
            audit.record(
                session, self.ctx, actor_for(user, ip), "user.signin_link_used", f"user/{row.email}"
            )
            return user


def signin_address(email: object) -> str | None:
    """The normalised email of a sign-in attempt, or None when it cannot be an account (not
    an email, or longer than any stored one): such attempts store nothing."""
    try:
        return normalize_email(email)
    except InvalidArgument:
        return None


@cache
def _unknown_user_hash() -> str:
    """A real Argon2id hash of a random password, made with the same parameters as every
    stored one: verifying against it costs what verifying a real user's password costs."""
    return _passwords.hash(secrets.token_urlsafe(32))


def _password_matches(password_hash: str | None, password: object) -> bool:
    """Exactly one Argon2 verify, whatever the inputs: the time of the answer does not tell
    whether the account exists, is disabled or has a password."""
    real = password_hash if password_hash and password_hash.startswith("$argon2") else None
    candidate = password if isinstance(password, str) and len(password) <= MAX_PASSWORD else ""
    try:
        matches = _passwords.verify(real or _unknown_user_hash(), candidate)
    except (VerificationError, InvalidHashError):
        return False
    return bool(matches) and real is not None and candidate == password
