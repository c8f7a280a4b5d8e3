"""From a verify verdict to an HTTP answer, in one place for the gateway, forward auth and the
middleware, so that a refused key reads the same wherever it is refused.

Bodies follow Google's error format (`{"error": {"code", "status", "message", "details"}}`, a
superset of the SPEC format) so that Gemini's client libraries show them as they show Google's.
One deliberate difference: Google answers an invalid key with 400 INVALID_ARGUMENT; Llavero
answers 401 UNAUTHENTICATED with Google's message text, because HTTP says 401 for missing or bad
credentials and because nginx `auth_request` passes only 2xx, 401 and 403 on to the client.

| verify code | HTTP |
| --- | --- |
| no key, MALFORMED, NOT_FOUND, EXPIRED, DELETED, DISABLED | 401 UNAUTHENTICATED |
| IP/REFERRER/APP/API_NOT_ALLOWED, ENVIRONMENT_MISMATCH | 403 PERMISSION_DENIED |
| RATE_LIMITED, QUOTA_EXCEEDED | 429 RESOURCE_EXHAUSTED + Retry-After |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from llavero.core.codes import ANSWERS, DAY_LIMITS, Code
from llavero.core.limits import LimitStatus
from llavero.core.verify import VerifyRequest, VerifyResult

MISSING_KEY: Final = "MISSING_KEY"
WWW_AUTHENTICATE: Final = 'Bearer realm="llavero", error="invalid_token"'


class Verifies(Protocol):
    """`llavero.core.verify.Verifier`, or a stand-in for it."""

    def verify(self, request: VerifyRequest) -> VerifyResult: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """HTTP status, Google status, message and ErrorInfo reason of one verify code."""

    status: int
    canonical: str
    message: str
    reason: str


VERDICTS: Final[Mapping[str, Verdict]] = {
    MISSING_KEY: Verdict(
        401,
        "UNAUTHENTICATED",
        "API key is missing. Pass it in the x-goog-api-key header, the key query parameter, "
        "Authorization: Bearer or X-API-Key.",
        "API_KEY_MISSING",
    ),
    **{
        code: Verdict(row.http_status, row.google_status, row.message, row.reason)
        for code, row in ANSWERS.items()
        if code is not Code.VALID
    },
}
"""Every refusal code's answer; `Code`'s table (llavero.core.codes) has a row for each code."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused request, ready to send: status, headers and the Google-style body."""

    code: str
    verdict: Verdict
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None

    @property
    def status(self) -> int:
        return self.verdict.status

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": self.verdict.reason,
                "domain": "llavero",
                "metadata": {"code": self.code},
            }
        ]
        if self.retry_after is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{self.retry_after}s",
                }
            )
        error = {
            "code": self.status,
            "message": self.verdict.message,
            "status": self.verdict.canonical,
            "details": details,
        }
        return {"error": error}

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())


def refusal_for_missing_key() -> Refusal:
    return Refusal(MISSING_KEY, VERDICTS[MISSING_KEY], {"WWW-Authenticate": WWW_AUTHENTICATE})


def refusal(result: VerifyResult) -> Refusal | None:
    """None when the key may pass; otherwise what to answer."""
    if result.valid:
        return None
    verdict = VERDICTS[result.code]
    headers = rate_limit_headers(result.limits)
    if verdict.status == 401:
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    retry_after = None
    if result.code.answer.retry_limits:
        retry_after = retry_after_seconds(result)
        headers["Retry-After"] = str(retry_after)
    return Refusal(result.code, verdict, headers, retry_after)


def retry_after_seconds(result: VerifyResult) -> int:
    """When the refusing limit resets: the longest reset among the spent limits of the kind
    that refused (daily ones for QUOTA_EXCEEDED, minute ones for RATE_LIMITED)."""
    kind = result.code.answer.retry_limits
    candidates = {n: v for n, v in result.limits.items() if n in kind} or dict(result.limits)
    spent = [v for v in candidates.values() if v["remaining"] <= 0] or list(candidates.values())
    return max([1, *(int(v["reset_seconds"]) for v in spent)])


def rate_limit_headers(limits: Mapping[str, LimitStatus]) -> dict[str, str]:
    """`RateLimit-Limit/Remaining/Reset` (IETF draft) of the tightest limit: fewest remaining."""
    if not limits:
        return {}
    name = min(limits, key=lambda n: (limits[n]["remaining"], -limits[n]["reset_seconds"]))
    tightest = limits[name]
    return {
        "RateLimit-Limit": str(tightest["limit"]),
        "RateLimit-Remaining": str(max(0, tightest["remaining"])),
        "RateLimit-Reset": str(tightest["reset_seconds"]),
        "RateLimit-Policy": f"{tightest['limit']};w={_window(name)};name={name}",
    }


def identity_headers(result: VerifyResult) -> dict[str, str]:
    """What an allowed request tells the protected app about its caller."""
    headers = {
        "X-Llavero-Key-Id": result.key_id or "",
        "X-Llavero-Project": result.project or "",
    }
    if result.plan:
        headers["X-Llavero-Plan"] = result.plan
    if result.environment:
        headers["X-Llavero-Environment"] = result.environment
    headers.update(rate_limit_headers(result.limits))
    return headers


def _window(name: str) -> int:
    return 86400 if name in DAY_LIMITS else 60
