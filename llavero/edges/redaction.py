"""The last line of defence for logs: no key string or management token in any log line.

Installed as the log record factory (`install`), so it sees every record of every logger in the
process, whatever handlers a server configures later: granian's and uvicorn's access and error
logs as much as Llavero's own. It replaces

- anything shaped like a key string or a management token (`<prefix>_` then 38 or more base62
  characters, percent-encoded ones included), wherever it appears: a path, a message, a
  traceback; and
- the value of every query parameter that `llavero.edges.credentials` reads as the key, whatever its
  spelling (`?%6Bey=…`, `;KEY=…`).

docs/security.md, "Key strings in requests and logs", says what this guarantees and which test
proves it.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

from llavero.edges import credentials

REDACTED: Final = "[REDACTED]"
# One base62 character, literal or percent-encoded at any depth.
_CHAR: Final = r"(?:[0-9A-Za-z]|%(?:25)*[0-9A-Fa-f]{2})"
_UNDERSCORE: Final = r"(?:_|%(?:25)*5[Ff])"
# 38 characters follow a key's or token's `prefix_`; longer runs are redacted whole.
SECRET_SHAPE: Final = re.compile(rf"{_UNDERSCORE}{_CHAR}{{38,}}")
QUERY: Final = re.compile(r"\?([^\s\"'#<>]*)")


def _redact_query(match: re.Match[str]) -> str:
    return "?" + credentials.redacted_query(match.group(1), REDACTED)


def redact(text: str) -> str:
    """The text with key-shaped strings and the values of key parameters replaced."""
    if "_" in text or "%" in text:
        text = SECRET_SHAPE.sub("_" + REDACTED, text)
    if "?" in text:
        text = QUERY.sub(_redact_query, text)
    return text


def _redacted_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def redact_record(record: logging.LogRecord) -> None:
    """Redacts a record in place: message, arguments (kept in their shape, as uvicorn's access
    formatter unpacks them and granian's reads them by name), traceback and stack."""
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redacted_value(arg) for arg in record.args)
    elif isinstance(record.args, dict):
        record.args = {name: _redacted_value(value) for name, value in record.args.items()}
    try:
        message = record.getMessage()
    except Exception:  # a broken format: logging would print msg and args as they are
        message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = message, ()
    if redact(message) != message:  # a secret inside a non-string argument
        record.msg, record.args = redact(message), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install() -> None:
    """Idempotent: wrap the process's log record factory so that every record is redacted."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        redact_record(record)
        return record

    redacting_factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_factory)
