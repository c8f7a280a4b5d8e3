"""Request bodies and list envelopes of the REST API (the OpenAPI document is built from them).

Bodies forbid unknown fields, so a typo is a 400 naming the field rather than a silent no-op.
Every string in a body, at any depth, must be well-formed Unicode (`llavero.core.text`); values are
checked by the service layer, which names the field that is wrong."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from llavero.core import context, restrictions, text
from llavero.service import models


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def well_formed_text(cls, data: Any) -> Any:
        """Raises `InvalidArgument` (not a pydantic error) so the 400 names the inner path."""
        text.check_tree(data, "")
        return data


class ProjectCreate(Body):
    display_name: str = Field(min_length=1, max_length=100)
    id: str | None = Field(default=None, max_length=1000)


class ProjectUpdate(Body):
    """Only the fields present change."""

    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    leak_policy: Literal["revoke", "disable", "notify"] | None = None


def name_kinds(schema: dict[str, Any]) -> None:
    """Name every registered restriction kind (llavero.core.restrictions.KINDS) in the schema
    of a `restrictions` field, when the document is built."""
    kinds = "; ".join(f"`{kind.name}`: {kind.description}" for kind in restrictions.KINDS)
    schema["description"] = f"Restrictions by kind (docs/restrictions.md). {kinds}."


class KeyCreate(Body):
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    expire_time: datetime | None = None
    environment: str | None = Field(default=None, max_length=1000)
    restrictions: dict[str, Any] | None = Field(default=None, json_schema_extra=name_kinds)
    annotations: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None


class KeyUpdate(Body):
    """Only the fields present change; `expire_time: null` removes the expiry."""

    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    expire_time: datetime | None = None
    environment: str | None = Field(default=None, max_length=1000)
    restrictions: dict[str, Any] | None = Field(default=None, json_schema_extra=name_kinds)
    annotations: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    state: Literal["ACTIVE", "DISABLED"] | None = None


class Rotate(Body):
    grace_period_seconds: int = Field(default=0, ge=0, le=604_800, strict=True)


def context_fields() -> dict[str, Any]:
    """The request context (llavero.core.context) as the fields of a request body."""
    return {
        field.name: (
            str | None,
            Field(default=None, max_length=field.max_length, description=field.description),
        )
        for field in context.CONTEXT_FIELDS
    }


if TYPE_CHECKING:
    RestrictionTestBody = Body
else:
    RestrictionTestBody = create_model("RestrictionTestBody", __base__=Body, **context_fields())
    RestrictionTestBody.__doc__ = "The context of `POST /v1/keys:verify` without `key` and `cost`."


class Lookup(Body):
    key_string: str = Field(max_length=1000)


MemberRole = Literal["owner", "editor", "viewer"]


class MemberAdd(Body):
    email: str = Field(max_length=254)
    role: MemberRole


class MemberUpdate(Body):
    role: MemberRole


class MemberList(BaseModel):
    members: list[models.Member]


class LeakReport(Body):
    """`POST /v1/keys:reportLeaked`: a key string (or management token) found where it should
    not be, from an admin or a scanner such as gitleaks or trufflehog."""

    key_string: str = Field(max_length=1000)
    url: str | None = Field(default=None, max_length=2048)
    source: str | None = Field(default=None, max_length=100)


class ProjectList(BaseModel):
    projects: list[models.Project]
    next_page_token: str


class KeyList(BaseModel):
    keys: list[models.Key]
    next_page_token: str


class AuditList(BaseModel):
    audit_events: list[models.AuditEvent]
    next_page_token: str
