"""Settings, declared once as data: every `LLAVERO_*` variable (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("llavero", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLAVERO_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the SQLite database and the generated hash secret live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; a SQLite file in the data dir when unset. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    secret_key: str | None = Field(
        default=None,
        description="Server-side secret for the keyed hash of key strings. Generated into the data "
        "dir when unset; set it to the same value on every instance that shares a database.",
    )
    key_prefix: str = Field(default="llv", description="Prefix of every key string.")
    public_url: str | None = Field(
        default=None, description="Base URL printed in sign-in links (default: http://HOST:PORT)."
    )
    plans_file: Path | None = Field(default=None, description="TOML file with plan limits.")
    paid_plan: str = Field(default="tier-1", description="Plan of a project with open billing.")
    rate_limit_backend: str = Field(
        default="database",
        description="Where rate-limit counters live: `database` (shared by every process on the "
        "database), `redis` (shared, fastest) or `memory` (this process only).",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis for limits.")
    usage_flush_seconds: float = Field(default=1.0, description="How often usage is written.")
    usage_retention_minute_days: int = Field(default=2, description="Keep minute buckets.")
    usage_retention_hour_days: int = Field(default=31, description="Keep hour buckets.")
    usage_retention_day_days: int = Field(default=400, description="Keep day buckets.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs whose X-Forwarded-For is believed (gateway and forward auth).",
    )
    gateway_upstream: str | None = Field(
        default=None, description="Base URL the gateway forwards to (`llavero gateway`)."
    )
    gateway_upstream_key_env: str = Field(
        default="GEMINI_API_KEY",
        description="Environment variable holding the upstream's own key (never logged).",
    )
    gateway_upstream_key_header: str = Field(
        default="x-goog-api-key",
        description="Header carrying the upstream key; `authorization` sends `Bearer KEY`.",
    )
    gateway_service: str | None = Field(
        default=None,
        description="Service name verify checks api_targets against (default: upstream host).",
    )
    gateway_environment: str | None = Field(
        default=None, description="Environment of the gateway; keys of another one are refused."
    )
    gateway_read_timeout_seconds: float = Field(
        default=300.0, description="Longest wait for the upstream's next bytes."
    )
    cache_size: int = Field(default=1_000_000, description="Key records kept in memory.")
    change_poll_seconds: float = Field(
        default=1.0,
        description="How often an instance reads the change feed of other instances (0 = off).",
    )
    instance_heartbeat_seconds: float = Field(
        default=5.0,
        description="How often a process refreshes its row in the instance registry; one "
        "silent for three intervals counts as gone.",
    )
    secure_cookies: bool | None = Field(
        default=None, description="Force the Secure cookie flag (default: when served over HTTPS)."
    )
    log_level: str = Field(default="info", description="Log level of the server.")
    log_format: str = Field(
        default="text",
        description="Llavero's own log lines: `text` (time, level, logger, message) or `json` "
        "(one object a line).",
    )

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'llavero.sqlite3'}"
