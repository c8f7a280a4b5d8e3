"""Reports of leaked keys: GitHub's secret scanning partner endpoint (signed by GitHub, no
bearer token) and `POST /v1/keys:reportLeaked` for admins and other scanners (docs/leaks.md).
Both hand the matches to `Leaks.report`, the one place that acts on a leak."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.schemas import LeakReport
from llavero.errors import InvalidArgument, Unauthenticated
from llavero.service import Actor
from llavero.service.leaks import KEY_TYPE, Match, Verdict

router = APIRouter(tags=["leaks"])
GITHUB = Actor.system("github-secret-scanning")
MAX_BODY = 4 * 1024 * 1024
MAX_MATCHES = 10_000
IDENTIFIER_HEADER = "Github-Public-Key-Identifier"
SIGNATURE_HEADER = "Github-Public-Key-Signature"


class Feedback(BaseModel):
    token_hash: str
    token_type: str
    label: str


class LeakVerdict(Feedback):
    kind: str | None
    key_id: str | None
    project: str | None
    state: str | None
    action: str | None


@router.post(
    "/v1/secret-scanning/github",
    response_model=list[Feedback],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "array", "items": {}}}},
        }
    },
)
async def github_secret_scanning(request: Request, llavero: LlaveroDep) -> Any:
    """GitHub's partner request: a JSON array of `{token, type, url, source}` signed with
    ECDSA P-256 over the raw body. A missing or bad signature is a 401 and changes nothing."""
    body = await _raw_body(request)
    signed = await run_in_threadpool(
        llavero.secret_scanning.verify,
        request.headers.get(IDENTIFIER_HEADER),
        request.headers.get(SIGNATURE_HEADER),
        body,
    )
    if not signed:
        raise Unauthenticated(
            f"the body is not signed by a known GitHub key ({IDENTIFIER_HEADER}, "
            f"{SIGNATURE_HEADER})"
        )
    matches = github_matches(body)
    verdicts = await run_in_threadpool(llavero.leaks.report, GITHUB, matches)
    return [verdict.feedback() for verdict in verdicts]


@router.post("/v1/keys:reportLeaked", response_model=LeakVerdict)
def report_leaked(body: LeakReport, actor: Caller, llavero: LlaveroDep) -> Any:
    """A key string (or management token) found leaked: the project's `leak_policy` applies.
    The string travels in the body, never in a URL; the answer names it by its SHA-256."""
    match = Match(body.key_string, KEY_TYPE, body.url, body.source or "api")
    (verdict,) = llavero.leaks.report(actor, [match])
    return _verdict_dict(verdict)


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise InvalidArgument(f"is larger than {MAX_BODY} bytes", field="body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise InvalidArgument(f"is larger than {MAX_BODY} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def github_matches(body: bytes) -> list[Match]:
    """The matches of a signed request; a wrong shape is a 400 naming the item and field."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("is not valid JSON", field="body") from None
    if not isinstance(items, list):
        raise InvalidArgument("must be an array of matches", field="body")
    if len(items) > MAX_MATCHES:
        raise InvalidArgument(f"has more than {MAX_MATCHES} matches", field="body")
    return [_match(index, item) for index, item in enumerate(items)]


def _match(index: int, item: Any) -> Match:
    if not isinstance(item, dict):
        raise InvalidArgument("must be an object", field=f"[{index}]")
    values: dict[str, str | None] = {}
    for name in ("token", "type", "url", "source"):
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidArgument("must be a string", field=f"[{index}].{name}")
        values[name] = value
    token = values["token"]
    if not token or len(token) > 1000:
        raise InvalidArgument("must be a string of 1 to 1000 characters", field=f"[{index}].token")
    return Match(token, values["type"] or KEY_TYPE, values["url"], values["source"] or "github")


def _verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        **verdict.feedback(),
        "kind": verdict.kind,
        "key_id": verdict.key_id,
        "project": verdict.project,
        "state": verdict.state,
        "action": verdict.action,
    }
