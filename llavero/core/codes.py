"""Verify codes and key states, each declared once: every module that names one reads it here.

`Code` is what `POST /v1/keys:verify` answers in `code`; its row in `ANSWERS` says how an edge
(gateway, forward auth, middleware) answers a refusal over HTTP, in Google's error format: the
HTTP status, the `google.rpc` status, the ErrorInfo reason and message, and which limits'
reset the Retry-After waits for. Both are string enums, so the wire values are the names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Code(StrEnum):
    """Verify outcomes, in the order the console stacks them (allowed first, then refused)."""

    VALID = "VALID"
    MALFORMED = "MALFORMED"
    NOT_FOUND = "NOT_FOUND"
    EXPIRED = "EXPIRED"
    DISABLED = "DISABLED"
    DELETED = "DELETED"
    IP_NOT_ALLOWED = "IP_NOT_ALLOWED"
    REFERRER_NOT_ALLOWED = "REFERRER_NOT_ALLOWED"
    APP_NOT_ALLOWED = "APP_NOT_ALLOWED"
    API_NOT_ALLOWED = "API_NOT_ALLOWED"
    ENVIRONMENT_MISMATCH = "ENVIRONMENT_MISMATCH"
    RATE_LIMITED = "RATE_LIMITED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"

    @property
    def answer(self) -> Answer:
        return ANSWERS[self]


class State(StrEnum):
    """A key's lifecycle state (`state` of a key in the API, the store and the console)."""

    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"
    DELETED = "DELETED"


LIVE_STATES: Final = (State.ACTIVE, State.DISABLED)
"""The states a user may set; DELETED is reached by deleting."""

REPORTED: Final = "REPORTED"
"""The usage bucket code of units reported after the answer (usage:report): not a verify code."""

MINUTE_LIMITS: Final = frozenset({"rpm", "upm"})
DAY_LIMITS: Final = frozenset({"rpd", "upd"})
INVALID_KEY_MESSAGE: Final = "API key not valid. Please pass a valid API key."


@dataclass(frozen=True, slots=True)
class Answer:
    """How an edge answers a code: `retry_limits` are the limits whose reset a Retry-After
    waits for (empty: no Retry-After)."""

    http_status: int
    google_status: str
    reason: str
    message: str
    retry_limits: frozenset[str] = frozenset()


def _unauthenticated(reason: str, message: str = INVALID_KEY_MESSAGE) -> Answer:
    return Answer(401, "UNAUTHENTICATED", reason, message)


def _denied(reason: str, message: str) -> Answer:
    return Answer(403, "PERMISSION_DENIED", reason, message)


ANSWERS: Final[Mapping[Code, Answer]] = {
    Code.VALID: Answer(200, "OK", "", ""),
    Code.MALFORMED: _unauthenticated("API_KEY_INVALID"),
    Code.NOT_FOUND: _unauthenticated("API_KEY_INVALID"),
    Code.EXPIRED: _unauthenticated("API_KEY_EXPIRED", "API key expired. Please renew the API key."),
    Code.DISABLED: _unauthenticated(
        "API_KEY_DISABLED", "API key is disabled. Enable it or use another key."
    ),
    Code.DELETED: _unauthenticated("API_KEY_INVALID"),
    Code.IP_NOT_ALLOWED: _denied(
        "API_KEY_IP_ADDRESS_BLOCKED", "Requests from this IP address are blocked."
    ),
    Code.REFERRER_NOT_ALLOWED: _denied(
        "API_KEY_HTTP_REFERRER_BLOCKED", "Requests from this referer are blocked."
    ),
    Code.APP_NOT_ALLOWED: _denied(
        "API_KEY_APP_BLOCKED", "Requests from this client application are blocked."
    ),
    Code.API_NOT_ALLOWED: _denied(
        "API_KEY_SERVICE_BLOCKED", "Requests to this API method are blocked."
    ),
    Code.ENVIRONMENT_MISMATCH: _denied(
        "API_KEY_ENVIRONMENT_MISMATCH", "This API key belongs to another environment."
    ),
    Code.RATE_LIMITED: Answer(
        429,
        "RESOURCE_EXHAUSTED",
        "RATE_LIMIT_EXCEEDED",
        "Rate limit exceeded for this key or its project. Retry after the Retry-After delay.",
        MINUTE_LIMITS,
    ),
    Code.QUOTA_EXCEEDED: Answer(
        429,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        "Daily quota exceeded for this key or its project. Retry after the Retry-After delay.",
        DAY_LIMITS,
    ),
}

_unanswered = set(Code) - set(ANSWERS)
if _unanswered:  # pragma: no cover - a new code without its row fails at import
    raise RuntimeError(f"verify codes without an answer: {sorted(_unanswered)}")
