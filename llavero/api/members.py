"""`/v1/projects/{project}/members`: who shares a project, with which role (docs/api.md#members).

The address is part of the path, percent-encoded as any path segment (`a%40example.com`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.schemas import MemberAdd, MemberList, MemberUpdate
from llavero.service import models

router = APIRouter(prefix="/v1/projects/{project}/members", tags=["members"])


@router.get("")
def list_members(project: str, actor: Caller, llavero: LlaveroDep) -> MemberList:
    return MemberList(members=llavero.members.list(actor, project))


@router.post("")
def add_member(project: str, body: MemberAdd, actor: Caller, llavero: LlaveroDep) -> models.Member:
    return llavero.members.add(actor, project, body.email, body.role)


@router.patch("/{email}")
def update_member(
    project: str, email: str, body: MemberUpdate, actor: Caller, llavero: LlaveroDep
) -> models.Member:
    return llavero.members.set_role(actor, project, email, body.role)


@router.delete("/{email}", status_code=204)
def remove_member(project: str, email: str, actor: Caller, llavero: LlaveroDep) -> Response:
    llavero.members.remove(actor, project, email)
    return Response(status_code=204)
