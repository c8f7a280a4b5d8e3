"""What the service layer hands out: the API serialises these, the console and the CLI show them.
No model here carries a key string, except `CreatedKey`, which exists exactly once per key."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Project(Model):
    id: str
    number: int
    display_name: str
    create_time: datetime
    update_time: datetime
    billing_account: str | None
    plan: str
    leak_policy: str = "revoke"


class Leak(Model):
    """Where and when a key's string was reported leaked, and by which scanner."""

    time: datetime
    url: str | None
    source: str | None


class Key(Model):
    id: str
    project: str
    display_name: str
    last4: str
    state: str
    create_time: datetime
    update_time: datetime
    expire_time: datetime | None
    delete_time: datetime | None
    purge_time: datetime | None
    environment: str | None
    restrictions: dict[str, Any]
    annotations: dict[str, str]
    limits: dict[str, int]
    last_used_time: datetime | None
    last_used_ip: str | None
    previous_last4: str | None
    previous_expire_time: datetime | None
    leak: Leak | None = None


class CreatedKey(Model):
    key: Key
    key_string: str


class Token(Model):
    id: str
    display_name: str
    last4: str
    scopes: list[str]
    created_by: str
    create_time: datetime
    expire_time: datetime | None
    revoke_time: datetime | None
    last_used_time: datetime | None


class CreatedToken(Model):
    token_info: Token
    token: str


class User(Model):
    id: int
    email: str
    role: str
    disabled: bool
    create_time: datetime
    last_signin_time: datetime | None


class Member(Model):
    """A project member, or an invitation (`invited`) for an address with no account yet."""

    email: str
    role: str
    invited: bool


class AuditEvent(Model):
    id: int
    time: datetime
    actor: str
    action: str
    target: str
    source_ip: str | None
    details: dict[str, Any]


class KeyLookup(Model):
    project: str
    key: str
    state: str


T = TypeVar("T")


class Page(Model, Generic[T]):
    items: list[T]
    next_page_token: str
