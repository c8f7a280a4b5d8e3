"""`/v1/projects/{project}/keys` and `/v1/keys/...`: the key lifecycle.

Routes with a `:verb` come before `/v1/keys/{key}` so that they are matched first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.projects import PageSize, PageToken
from llavero.api.schemas import (
    KeyCreate,
    KeyList,
    KeyUpdate,
    Lookup,
    RestrictionTestBody,
    Rotate,
)
from llavero.service import models
from llavero.service.dryrun import RestrictionTest

router = APIRouter(tags=["keys"])


@router.post("/v1/projects/{project}/keys")
def create_key(
    project: str, body: KeyCreate, actor: Caller, llavero: LlaveroDep
) -> models.CreatedKey:
    """Returns the key string once: it is never shown again."""
    return llavero.keys.create(
        actor,
        project,
        display_name=body.display_name,
        expire_time=body.expire_time,
        environment=body.environment,
        restrictions=body.restrictions,
        annotations=body.annotations,
        limits=body.limits,
    )


@router.get("/v1/projects/{project}/keys")
def list_keys(
    project: str,
    actor: Caller,
    llavero: LlaveroDep,
    show_deleted: bool = False,
    filter: Annotated[str | None, Query(max_length=1000)] = None,
    page_size: PageSize = None,
    page_token: PageToken = None,
    order_by: Annotated[str | None, Query(max_length=100)] = None,
) -> KeyList:
    """`project` may be `-` for every project. `filter`: `state=ACTIVE environment=production
    name:gemini expiring_within_days=7`, AND-ed. `order_by`: `create_time desc` (default),
    `create_time`, `display_name` or `project`; a page token continues only its own order."""
    page = llavero.keys.list(
        actor,
        project,
        show_deleted=show_deleted,
        filter=filter,
        page_size=page_size,
        page_token=page_token,
        order_by=order_by,
    )
    return KeyList(keys=page.items, next_page_token=page.next_page_token)


@router.post("/v1/keys:lookup")
def lookup_key(body: Lookup, actor: Caller, llavero: LlaveroDep) -> models.KeyLookup:
    """The key string travels in the body so it never sits in a URL or an access log."""
    return llavero.keys.lookup(actor, body.key_string)


@router.post("/v1/keys/{key}:undelete")
def undelete_key(key: str, actor: Caller, llavero: LlaveroDep) -> models.Key:
    return llavero.keys.undelete(actor, key)


@router.post("/v1/keys/{key}:rotate")
def rotate_key(key: str, body: Rotate, actor: Caller, llavero: LlaveroDep) -> models.CreatedKey:
    return llavero.keys.rotate(actor, key, body.grace_period_seconds)


@router.post("/v1/keys/{key}:testRestrictions")
def test_key_restrictions(
    key: str, body: RestrictionTestBody, actor: Caller, llavero: LlaveroDep
) -> RestrictionTest:
    """Which rule would allow or refuse a verify with this context, and why; counts no usage."""
    return llavero.keys.test_restrictions(actor, key, body.model_dump())


@router.get("/v1/keys/{key}")
def get_key(key: str, actor: Caller, llavero: LlaveroDep) -> models.Key:
    return llavero.keys.get(actor, key)


@router.patch("/v1/keys/{key}")
def update_key(key: str, body: KeyUpdate, actor: Caller, llavero: LlaveroDep) -> models.Key:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return llavero.keys.update(actor, key, changes)


@router.delete("/v1/keys/{key}")
def delete_key(key: str, actor: Caller, llavero: LlaveroDep) -> models.Key:
    """Soft delete: the key stops verifying at once and can be undeleted for 30 days."""
    return llavero.keys.delete(actor, key)
