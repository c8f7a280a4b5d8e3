"""Sign-in through an OpenID provider: who may come in, and the account they come in as.

The console checks the provider's answer (state, nonce, PKCE, ID token); this module decides,
from the verified claims alone, whether the address may sign in. An address gets in when it
has an account, has been invited to a project, or belongs to `LLAVERO_OIDC_ALLOWED_DOMAINS`
(which then creates a member account at its first sign-in). docs/console.md#sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from llavero.errors import InvalidArgument, PermissionDenied, Unauthenticated
from llavero.service import audit, models, users
from llavero.service.context import Actor, Context
from llavero.store import tables


@dataclass(frozen=True, slots=True)
class Identity:
    """The claims of a validated ID token that sign-in reads."""

    email: str
    email_verified: bool
    groups: frozenset[str] = frozenset()


class Federation:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sign_in(self, identity: Identity, ip: str | None = None) -> models.User:
        """The user an identity signs in as. An unverified address is never trusted: anyone can
        claim one at many providers."""
        if not identity.email_verified:
            raise Unauthenticated("the provider did not verify this email address")
        try:
            address = users.normalize_email(identity.email)
        except InvalidArgument:
            raise Unauthenticated("the provider gave no usable email address") from None
        try:
            return self._sign_in(address, identity, ip)
        except IntegrityError:  # a concurrent first sign-in created the account: use it
            return self._sign_in(address, identity, ip)

    def _sign_in(self, address: str, identity: Identity, ip: str | None) -> models.User:
        with self.ctx.db.transaction() as session:
            row = session.scalar(select(tables.User).where(tables.User.email == address))
            if row is None:
                row = self._provision(session, address, ip)
            if row.disabled:
                raise Unauthenticated("this account is disabled")
            self._follow_admin_groups(session, row, identity, ip)
            row.last_signin_time = self.ctx.clock.now()
            user = users.to_model(row)
            audit.record(
                session,
                self.ctx,
                users.actor_for(user, ip),
                "user.signin",
                f"user/{address}",
                method="oidc",
            )
            return user

    def _provision(self, session: Session, address: str, ip: str | None) -> tables.User:
        domain = address.rsplit("@", 1)[1]
        allowed = {d.strip().lower().lstrip("@") for d in self.ctx.settings.oidc_allowed_domains}
        invited = session.scalar(
            select(tables.ProjectInvitation.email)
            .where(tables.ProjectInvitation.email == address)
            .limit(1)
        )
        if domain not in allowed and invited is None:
            raise PermissionDenied("this address may not sign in here", field="email")
        row = tables.User(
            email=address,
            password_hash=None,
            role="member",
            disabled=False,
            create_time=self.ctx.clock.now(),
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            self.ctx,
            _provider(ip),
            "user.create",
            f"user/{address}",
            role="member",
            via="oidc",
        )
        return row

    def _follow_admin_groups(
        self, session: Session, row: tables.User, identity: Identity, ip: str | None
    ) -> None:
        """With admin groups configured, the provider decides who is an admin at each sign-in."""
        admin_groups = set(self.ctx.settings.oidc_admin_groups)
        if not admin_groups:
            return
        role = "admin" if admin_groups & identity.groups else "member"
        if role != row.role:
            old, row.role = row.role, role
            audit.record(
                session,
                self.ctx,
                _provider(ip),
                "user.update",
                f"user/{row.email}",
                old=old,
                new=role,
            )


def _provider(ip: str | None) -> Actor:
    """Who the audit trail names for what the provider's answer changed."""
    return Actor("oidc", frozenset({"admin"}), None, ip)
