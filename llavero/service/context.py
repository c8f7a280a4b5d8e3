"""Who is acting, and the shared parts every service needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from llavero.config import Settings
from llavero.core.cache import KeyCache
from llavero.core.clock import Clock
from llavero.core.keyformat import KeyHasher
from llavero.errors import PermissionDenied
from llavero.service.pagination import PageTokens
from llavero.store import Database

SCOPES = ("keys:read", "keys:write", "keys:verify", "projects:write", "admin")
MEMBER_SCOPES = frozenset({"keys:read", "keys:write", "projects:write"})


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of a service method: a console user, a management token or the local CLI.

    `user_id` is set for console users who are not admins: they reach only their projects."""

    name: str
    scopes: frozenset[str]
    user_id: int | None = None
    ip: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or self.is_admin  # the scope first: no property call

    def require(self, scope: str) -> None:
        if not self.allows(scope):
            raise PermissionDenied(f"this call needs the scope {scope}")

    def with_ip(self, ip: str | None) -> Actor:
        return Actor(self.name, self.scopes, self.user_id, ip)

    @classmethod
    def system(cls, name: str = "cli") -> Actor:
        """The local operator: whoever can run `llavero` on the database owns it."""
        return cls(name, frozenset({"admin"}))


@dataclass(slots=True)
class Context:
    settings: Settings
    db: Database
    clock: Clock
    hasher: KeyHasher
    cache: KeyCache
    page_tokens: PageTokens
    key_prefix: str = field(init=False)

    def __post_init__(self) -> None:
        self.key_prefix = self.settings.key_prefix
