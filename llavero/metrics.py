"""Prometheus metric objects of the whole app, declared in one place so that names stay consistent.

They live in prometheus_client's default registry.
"""

from __future__ import annotations

from prometheus_client import Counter

RATE_LIMIT_BACKEND_ERRORS = Counter(
    "llavero_rate_limit_backend_errors",
    "Calls to the shared rate limit backend (Redis) that failed; they were answered from "
    "in-process counters instead.",
)
