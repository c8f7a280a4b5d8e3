"""The app `llavero serve` runs, built from the LLAVERO_* settings inside the server's worker.

granian (see `llavero.cli.serve`) imports its app by name in a worker process, so the app is
made here by a factory rather than handed over as an object; any ASGI server can use it too:
`granian --interface asgi --factory llavero.asgi:serving_app`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

from starlette.types import ASGIApp

from llavero.application import create_app
from llavero.config import Settings
from llavero.edges import redaction
from llavero.edges.access_log import AccessLogWriter
from llavero.edges.logs import configure_logging
from llavero.service import Llavero

SERVE_PID_ENV = "LLAVERO_SERVE_PID"  # set by `llavero serve` for its workers
ACCESS_LOG_LEVELS = ("debug", "info")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """A worker of `llavero serve` ends when serve does, even on `kill -9`: otherwise it keeps
    serving with its own counters, and a second serve starts on the same port (granian binds
    with SO_REUSEPORT). Linux only; elsewhere the worker relies on granian's own shutdown."""
    parent = os.environ.get(SERVE_PID_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):  # serve died before the call above: follow it now
        os.kill(os.getpid(), signal.SIGTERM)


def serving_app() -> ASGIApp:
    """The console and the API, with the change feed and the usage flusher running.

    granian reads no `X-Forwarded-For` / `X-Forwarded-Proto`; the app does, from the proxies in
    `LLAVERO_TRUSTED_PROXIES` only (`llavero.edges.proxy_trust`, docs/security.md). Every log line
    of the worker goes through the key redaction (`llavero.edges.redaction`); at log level
    `info` and `debug` the app writes the access log itself (`llavero.edges.access_log`).
    """
    die_with_parent()
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    redaction.install()
    access_log = AccessLogWriter() if settings.log_level.lower() in ACCESS_LOG_LEVELS else None
    app: ASGIApp = create_app(Llavero(settings), background=True, access_log=access_log)
    logging.getLogger("llavero.serve").info(
        "worker %d ready; rate limits counted in %s", os.getpid(), settings.rate_limit_backend
    )
    return app
