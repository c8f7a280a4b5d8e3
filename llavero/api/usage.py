"""Usage series (`GET /v1/keys/{key}/usage`, `GET /v1/projects/{project}/usage`) and the
Prometheus metrics of this instance (`GET /metrics`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from llavero.api.auth import Caller, LlaveroDep
from llavero.service.usage import UsageSeries

router = APIRouter(tags=["usage"])

Start = Annotated[
    str | None,
    Query(max_length=64, description="RFC 3339; default: end minus 1 h, 1 day or 30 days."),
]
End = Annotated[str | None, Query(max_length=64, description="RFC 3339; default: now.")]
Granularity = Annotated[str, Query(max_length=16, description="`minute`, `hour` or `day`.")]


@router.get("/v1/keys/{key}/usage")
def key_usage(
    key: str,
    actor: Caller,
    llavero: LlaveroDep,
    start: Start = None,
    end: End = None,
    granularity: Granularity = "hour",
) -> UsageSeries:
    """Requests by outcome and units per bucket, every bucket from `start` to `end`."""
    return llavero.usage.key_series(actor, key, start, end, granularity)


@router.get("/v1/projects/{project}/usage")
def project_usage(
    project: str,
    actor: Caller,
    llavero: LlaveroDep,
    start: Start = None,
    end: End = None,
    granularity: Granularity = "hour",
) -> UsageSeries:
    """The usage of every key of the project, bucket by bucket."""
    return llavero.usage.project_series(actor, project, start, end, granularity)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    """Prometheus text format: counts and timings only, no key, project or token names."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
