"""Project members: who may read or change a project, and invitations for addresses that have
no account yet. Owners manage members; a project always keeps at least one owner."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Delete, Update, delete, func, select, update
from sqlalchemy.orm import Session

from llavero.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from llavero.service import access, audit, models, projects
from llavero.service.context import Actor, Context
from llavero.service.users import normalize_email
from llavero.store import tables

ROLES: Final = access.PROJECT_ROLES
"""owner: members, keys and billing; editor: keys and the billing link; viewer: reads only."""


def check_role(value: object) -> str:
    if value not in ROLES:
        raise InvalidArgument("must be owner, editor or viewer", field="role")
    return str(value)


def claim_invitations(session: Session, ctx: Context, user: tables.User) -> None:
    """At sign-in: every invitation for the user's address becomes a membership."""
    invitations = session.scalars(
        select(tables.ProjectInvitation).where(tables.ProjectInvitation.email == user.email)
    ).all()
    for invitation in invitations:
        member = session.get(tables.ProjectMember, (invitation.project_id, user.id))
        if member is None:
            session.add(
                tables.ProjectMember(
                    project_id=invitation.project_id, user_id=user.id, role=invitation.role
                )
            )
        session.delete(invitation)
        actor = Actor(f"user:{user.email}", frozenset(), user.id)
        audit.record(
            session,
            ctx,
            actor,
            "member.join",
            f"project/{invitation.project_id}",
            email=user.email,
            role=invitation.role,
        )


class Members:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def list(self, actor: Actor, project_id: str) -> list[models.Member]:
        """Every member may see who else is on the project: that is how a team shares one."""
        actor.require("keys:read")
        with self.ctx.db.reading() as session:
            row = projects.load(session, actor, project_id)
            members = session.execute(
                select(tables.User.email, tables.ProjectMember.role)
                .join(tables.ProjectMember, tables.ProjectMember.user_id == tables.User.id)
                .where(tables.ProjectMember.project_id == row.id)
            ).all()
            invited = session.execute(
                select(tables.ProjectInvitation.email, tables.ProjectInvitation.role).where(
                    tables.ProjectInvitation.project_id == row.id
                )
            ).all()
        found = [models.Member(email=e, role=r, invited=False) for e, r in members]
        found += [models.Member(email=e, role=r, invited=True) for e, r in invited]
        return sorted(found, key=lambda member: (ROLES.index(member.role), member.email))

    def writable(self, actor: Actor) -> frozenset[str] | None:
        """The projects whose keys the actor may change; None when that is every project."""
        ids = access.visible_projects(actor, access.KEYS)
        if ids is None:
            return None
        with self.ctx.db.reading() as session:
            return frozenset(session.scalars(ids).all())

    def add(self, actor: Actor, project_id: str, email: str, role: str) -> models.Member:
        """An address without an account is kept as an invitation until its first sign-in."""
        address, role = normalize_email(email), check_role(role)
        with self.ctx.db.transaction() as session:
            row = self._owned(session, actor, project_id)
            user = session.scalar(select(tables.User).where(tables.User.email == address))
            if user is not None:
                if session.get(tables.ProjectMember, (row.id, user.id)) is not None:
                    raise AlreadyExists("this address is already a member", field="email")
                session.add(tables.ProjectMember(project_id=row.id, user_id=user.id, role=role))
            else:
                if session.get(tables.ProjectInvitation, (row.id, address)) is not None:
                    raise AlreadyExists("this address is already invited", field="email")
                session.add(
                    tables.ProjectInvitation(
                        project_id=row.id,
                        email=address,
                        role=role,
                        invited_by=actor.name,
                        create_time=self.ctx.clock.now(),
                    )
                )
            invited = user is None
            audit.record(
                session,
                self.ctx,
                actor,
                "member.add",
                f"project/{row.id}",
                email=address,
                role=role,
                invited=invited,
            )
        return models.Member(email=address, role=role, invited=invited)

    def set_role(self, actor: Actor, project_id: str, email: str, role: str) -> models.Member:
        address, role = normalize_email(email), check_role(role)
        with self.ctx.db.transaction() as session:
            row = self._owned(session, actor, project_id)
            member, invitation = self._find(session, row.id, address)
            if member is not None:
                old = member.role
                if old == "owner" and role != "owner":
                    self._unless_last_owner(session, member, update(tables.ProjectMember), role)
                else:
                    member.role = role
            else:
                assert invitation is not None
                old, invitation.role = invitation.role, role
            audit.record(
                session,
                self.ctx,
                actor,
                "member.update",
                f"project/{row.id}",
                email=address,
                old=old,
                new=role,
            )
        return models.Member(email=address, role=role, invited=member is None)

    def remove(self, actor: Actor, project_id: str, email: str) -> None:
        address = normalize_email(email)
        with self.ctx.db.transaction() as session:
            row = self._owned(session, actor, project_id)
            member, invitation = self._find(session, row.id, address)
            if member is not None and member.role == "owner":
                self._unless_last_owner(session, member, delete(tables.ProjectMember), None)
            else:
                session.delete(member or invitation)
            audit.record(
                session, self.ctx, actor, "member.remove", f"project/{row.id}", email=address
            )

    def _owned(self, session: Session, actor: Actor, project_id: str) -> tables.Project:
        """The project, once the actor may manage its members: an owner, or an admin."""
        actor.require("projects:write")
        return projects.load(session, actor, project_id, access.MANAGE)

    def _find(
        self, session: Session, project_id: str, address: str
    ) -> tuple[tables.ProjectMember | None, tables.ProjectInvitation | None]:
        member = session.scalar(
            select(tables.ProjectMember)
            .join(tables.User, tables.User.id == tables.ProjectMember.user_id)
            .where(tables.ProjectMember.project_id == project_id, tables.User.email == address)
        )
        invitation = (
            None if member else session.get(tables.ProjectInvitation, (project_id, address))
        )
        if member is None and invitation is None:
            raise NotFound("no member or invitation with this address", field="email")
        return member, invitation

    def _unless_last_owner(
        self,
        session: Session,
        member: tables.ProjectMember,
        change: Update | Delete,
        role: str | None,
    ) -> None:
        """Demote (`role`) or remove an owner in one conditional statement that another owner
        must remain for, so two owners demoting each other at once cannot both succeed. On
        PostgreSQL the owners' rows are locked first: the second writer waits, then counts again;
        SQLite runs the statement under its write lock."""
        project, owner = tables.ProjectMember.project_id, tables.ProjectMember.role == "owner"
        session.execute(
            select(tables.ProjectMember.user_id)
            .where(project == member.project_id, owner)
            .with_for_update()
        )
        others = (
            select(func.count())
            .select_from(tables.ProjectMember)
            .where(
                project == member.project_id,
                owner,
                tables.ProjectMember.user_id != member.user_id,
            )
            .scalar_subquery()
        )
        statement = change.where(
            project == member.project_id,
            tables.ProjectMember.user_id == member.user_id,
            others > 0,
        )
        if isinstance(statement, Update):
            statement = statement.values(role=role)
        done = session.execute(statement.execution_options(synchronize_session=False))
        if getattr(done, "rowcount", 0) != 1:
            raise FailedPrecondition("a project keeps at least one owner", field="role")
        session.expire(member)
