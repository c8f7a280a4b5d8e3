"""Who may do what on a project: the one place project roles are read (docs/api.md, "Roles").

A management token acts on every project within its scopes; so does an admin user. A member
user reaches only the projects they are a member of, and only as far as their role goes. A
project the member does not belong to answers "does not exist", as an unknown one does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from llavero.errors import PermissionDenied
from llavero.service.context import Actor
from llavero.store import tables

PROJECT_ROLES: Final = ("owner", "editor", "viewer")
READ: Final = "read"  # the project, its keys, usage, billing state and audit events
KEYS: Final = "keys"  # create, change, rotate, delete and undelete keys
BILLING: Final = "billing"  # link or unlink a billing account
MANAGE: Final = "manage"  # rename or delete the project, manage its members
PERMISSIONS: Final[Mapping[str, frozenset[str]]] = {
    READ: frozenset(PROJECT_ROLES),
    KEYS: frozenset({"owner", "editor"}),
    BILLING: frozenset({"owner", "editor"}),
    MANAGE: frozenset({"owner"}),
}
WHAT: Final[Mapping[str, str]] = {
    READ: "read it",
    KEYS: "change its keys",
    BILLING: "change its billing",
    MANAGE: "manage it",
}


def is_member_bound(actor: Actor) -> bool:
    """A console user who is not an admin: bound to the projects they are a member of."""
    return actor.user_id is not None and not actor.is_admin


def role_of(session: Session, actor: Actor, project_id: str) -> str | None:
    return session.scalar(
        select(tables.ProjectMember.role).where(
            tables.ProjectMember.project_id == project_id,
            tables.ProjectMember.user_id == actor.user_id,
        )
    )


def check(session: Session, actor: Actor, project_id: str, need: str) -> bool:
    """False when the actor is a member-bound user outside the project (the caller answers
    "not found"); PermissionDenied when their role does not reach `need`."""
    if not is_member_bound(actor):
        return True
    role = role_of(session, actor, project_id)
    if role is None:
        return False
    if role not in PERMISSIONS[need]:
        raise PermissionDenied(
            f"your role on project {project_id!r} ({role}) does not allow you to {WHAT[need]}"
        )
    return True


def visible_projects(actor: Actor, need: str = READ) -> Select[Any] | None:
    """The ids of the live projects the actor may `need` on, or None for every project."""
    if not is_member_bound(actor):
        return None
    query = (
        select(tables.Project.id)
        .join(tables.ProjectMember)
        .where(tables.ProjectMember.user_id == actor.user_id, tables.Project.delete_time.is_(None))
    )
    if need != READ:  # every role reads
        query = query.where(tables.ProjectMember.role.in_(PERMISSIONS[need]))
    return query
