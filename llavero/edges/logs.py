"""Secrets out of access logs: uvicorn's access log prints the path with its query string, and
`?key=` (forward auth) or `?token=` (sign-in links) carry secrets that must never reach a log."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime

import orjson

from llavero.edges.redaction import REDACTED
from llavero.edges.redaction import install as install_redaction

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
    and redact key strings in every log record of the process (`llavero.edges.redaction`)."""
    install_redaction()
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
        logger.addFilter(RedactSecrets())


LLAVERO_LOGGER = "llavero"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def text_formatter() -> logging.Formatter:
    """`2026-08-01 12:00:00,123 INFO llavero.limits: ...`, the time in UTC."""
    formatter = logging.Formatter(TEXT_FORMAT)
    formatter.converter = time.gmtime
    return formatter


def configure_logging(level: str, log_format: str = "text") -> None:
    """Llavero's own loggers on stderr at `LLAVERO_LOG_LEVEL`, whatever the server did to the
    root logger (granian leaves it without a handler, so INFO lines vanished and warnings came
    out bare). Idempotent; `llavero.*` records do not also reach the root's handlers."""
    if log_format not in LOG_FORMATS:
        choices = ", ".join(LOG_FORMATS)
        raise ValueError(f"LLAVERO_LOG_FORMAT: unknown format {log_format!r}; use one of {choices}")
    logger = logging.getLogger(LLAVERO_LOGGER)
    for handler in [h for h in logger.handlers if getattr(h, "llavero", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.llavero = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logger.addHandler(handler)
    logger.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
    logger.propagate = False
