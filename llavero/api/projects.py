"""`/v1/projects`: create, list, read, rename, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.schemas import ProjectCreate, ProjectList, ProjectUpdate
from llavero.errors import InvalidArgument
from llavero.service import models

router = APIRouter(prefix="/v1/projects", tags=["projects"])
PageSize = Annotated[int | None, Query(ge=0, le=1000)]
PageToken = Annotated[str | None, Query(max_length=2000)]


@router.post("", status_code=200)
def create_project(body: ProjectCreate, actor: Caller, llavero: LlaveroDep) -> models.Project:
    return llavero.projects.create(actor, body.display_name, body.id)


@router.get("")
def list_projects(
    actor: Caller, llavero: LlaveroDep, page_size: PageSize = None, page_token: PageToken = None
) -> ProjectList:
    page = llavero.projects.list(actor, page_size=page_size, page_token=page_token)
    return ProjectList(projects=page.items, next_page_token=page.next_page_token)


@router.get("/{project}")
def get_project(project: str, actor: Caller, llavero: LlaveroDep) -> models.Project:
    return llavero.projects.get(actor, project)


@router.patch("/{project}")
def update_project(
    project: str, body: ProjectUpdate, actor: Caller, llavero: LlaveroDep
) -> models.Project:
    """Rename (`display_name`) and/or set `leak_policy`: `revoke`, `disable` or `notify`."""
    if body.display_name is None and body.leak_policy is None:
        raise InvalidArgument("give display_name or leak_policy", field="body")
    return llavero.projects.update(
        actor, project, display_name=body.display_name, leak_policy=body.leak_policy
    )


@router.delete("/{project}", status_code=204)
def delete_project(project: str, actor: Caller, llavero: LlaveroDep) -> Response:
    llavero.projects.delete(actor, project)
    return Response(status_code=204)
