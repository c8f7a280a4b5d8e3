"""Settings, declared once as data: every `LLAVERO_*` variable (docs/configuration.md)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27 h in all).
RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
EMAIL_EVENTS = ("key.expiring", "key.expired", "key.leaked", "quota.threshold", "webhook.disabled")


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
    database_connect_timeout_seconds: float = Field(
        default=3.0, gt=0, description="Longest wait to open a database connection."
    )
    database_statement_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Longest wait for any one answer of the database."
    )
    database_pool_timeout_seconds: float = Field(
        default=3.0, gt=0, description="Longest wait for a free connection of the pool."
    )
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
        description="Addresses and CIDRs of the proxies whose client-address headers are believed "
        "(serve, forward auth, the gateway, the middleware); default: none.",
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
    cache_ttl_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Longest a cached key or token record is used before it is read again.",
    )
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
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID provider whose sign-in the console offers, e.g. "
        "https://accounts.google.com (discovery at ISSUER/.well-known/openid-configuration).",
    )
    oidc_client_id: str | None = Field(default=None, description="Client id at the provider.")
    oidc_client_secret: str | None = Field(
        default=None, description="Client secret at the provider (never logged)."
    )
    oidc_provider_name: str | None = Field(
        default=None,
        description="Name on the sign-in button (default: Google for Google's issuer, else OIDC).",
    )
    oidc_allowed_domains: list[str] = Field(
        default_factory=list,
        description="Email domains whose first sign-in creates a member account.",
    )
    oidc_admin_groups: list[str] = Field(
        default_factory=list,
        description="Groups (in the ID token's groups claim) whose members sign in as admins.",
    )
    oidc_groups_claim: str = Field(default="groups", description="ID token claim with groups.")
    oidc_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        description="Scopes asked for at sign-in.",
    )
    oidc_clock_skew_seconds: int = Field(
        default=60, description="Leeway for the ID token's exp and iat checks."
    )
    password_signin: bool = Field(
        default=True, description="Offer email and password sign-in on the console."
    )

    webhook_poll_seconds: float = Field(
        default=1.0, description="How often an instance sends queued events (0 = off)."
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, description="Longest wait for a webhook endpoint's answer."
    )
    webhook_retry_seconds: list[float] = Field(
        default_factory=lambda: list(RETRY_SCHEDULE),
        description="Waits between delivery attempts; after the last, the endpoint is disabled.",
    )
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts webhook URLs may name (`*.example.com` too); empty allows any.",
    )
    alert_check_seconds: float = Field(
        default=60.0, description="How often expiring keys and quota thresholds are checked."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for email alerts.")
    smtp_port: int = Field(default=25, description="Port of the SMTP server.")
    smtp_username: str | None = Field(default=None, description="SMTP login, if any.")
    smtp_password: str | None = Field(default=None, description="SMTP password, if any.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP session to TLS.")
    smtp_sender: str = Field(default="llavero@localhost", description="From address of alerts.")
    smtp_language: str = Field(default="es_419", description="Language of alert emails.")
    smtp_events: list[str] = Field(
        default_factory=lambda: list(EMAIL_EVENTS),
        description="Event types emailed to the owners of the project.",
    )

    github_secret_scanning_keys: str | None = Field(
        default=None,
        description="Path or URL of GitHub's secret scanning public keys (JSON): "
        "POST /v1/secret-scanning/github is refused while unset (docs/leaks.md).",
    )

    log_format: str = Field(
        default="text",
        description="Llavero's own log lines: `text` (time, level, logger, message) or `json` "
        "(one object a line).",
    )

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def oidc_name(self) -> str:
        """What the sign-in button says after "Sign in with"."""
        if self.oidc_provider_name:
            return self.oidc_provider_name
        google = (self.oidc_issuer or "").rstrip("/") == "https://accounts.google.com"
        return "Google" if google else "OIDC"

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_cidrs(cls, proxies: list[str]) -> list[str]:
        """A typo here must stop the program, not trust the wrong peers or no one."""
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or CIDR") from None
        return proxies

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'llavero.sqlite3'}"
