"""Secrets out of access logs: uvicorn's access log prints the path with its query string, and
`?key=` (forward auth) or `?token=` (sign-in links) carry secrets that must never reach a log."""

from __future__ import annotations

import logging
import re

from llavero.redaction import REDACTED
from llavero.redaction import install as install_redaction

ACCESS_LOGGER = "uvicorn.access"
SECRET_PARAMETER = re.compile(r"([?&](?:key|token)=)[^&#\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """The text with the value of every `key=` and `token=` query parameter replaced."""
    return SECRET_PARAMETER.sub(rf"\g<1>{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Rewrites the message arguments of a record (uvicorn passes the path as one of them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def install_access_log_filter() -> None:
    """Idempotent: add the filter to uvicorn's access logger (uvicorn keeps logger filters),
    and redact key strings in every log record of the process (`llavero.redaction`)."""
    install_redaction()
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
        logger.addFilter(RedactSecrets())
