"""Access logs never carry the value of a `key=` or `token=` query parameter."""

from __future__ import annotations

import logging

import pytest

from llavero.core import keyformat
from llavero.edges.logs import (
    ACCESS_LOGGER,
    REDACTED,
    RedactSecrets,
    install_access_log_filter,
    redact,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/forward-auth?key=SECRET", f"/v1/forward-auth?key={REDACTED}"),
        ("/signin/link?token=SECRET&next=/app", f"/signin/link?token={REDACTED}&next=/app"),
        ("/x?a=1&KEY=SECRET#frag", f"/x?a=1&KEY={REDACTED}#frag"),
        ("/x?monkey=banana&key=", f"/x?monkey=banana&key={REDACTED}"),
        ("/v1/keys?page_token=abc", "/v1/keys?page_token=abc"),
    ],
)
def test_redact(path: str, expected: str) -> None:
    assert redact(path) == expected


def test_uvicorn_access_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_access_log_filter()
    install_access_log_filter()
    logger = logging.getLogger(ACCESS_LOGGER)
    assert sum(isinstance(f, RedactSecrets) for f in logger.filters) == 1
    key = keyformat.generate("llv")
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        # The exact call uvicorn makes for every request.
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            f"/v1/forward-auth?key={key}",
            "1.1",
            200,
        )
        logger.info(f"GET /signin/link?token={key}")
    assert key not in caplog.text
    assert caplog.text.count(REDACTED) == 2
    assert '"GET /v1/forward-auth?key=[REDACTED] HTTP/1.1" 200' in caplog.text
