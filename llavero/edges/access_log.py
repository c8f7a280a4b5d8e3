"""The access log of `llavero serve`: one line per HTTP request, off the event loop.

granian's own access log built two dicts, a `logging.LogRecord` (redacted field by field by
`llavero.edges.redaction`), formatted the time with `strftime` and flushed stdout, all in the
event loop and for every line: about 30 µs a request, half the throughput of a cached verify
(bench/notes.md). Here the event loop only appends a tuple to a queue; a thread formats the lines
in the same format as granian's (`[time] addr - "METHOD path HTTP/1.1" status ms`), redacts
every batch whole (`redaction.redact`: key shapes anywhere in the line, key parameters after a
`?`) and writes it with one `write` and one flush every `FLUSH_SECONDS`.

A clean shutdown (the lifespan's end) writes what is queued; a crash loses at most the lines of
the last `FLUSH_SECONDS`. When the writer cannot keep up, the oldest of `QUEUE_LIMIT` queued
lines are dropped rather than memory growing.

`AccessLog` wraps `send` to learn the status, which costs an extra coroutine on every message
(measured at about 10 µs a request under granian, bench/notes.md); the verify fast path, which
knows its status, appends its entries to the same writer itself (`AccessLogWriter.log`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from datetime import datetime
from typing import BinaryIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llavero.edges import redaction

FLUSH_SECONDS = 0.2
QUEUE_LIMIT = 100_000
CHUNK = 256  # lines formatted and written between two turns of the GIL (~0.5 ms of work)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"
# What an entry holds: wall-clock start, client address, method, path, HTTP version, status,
# seconds taken. Strings and numbers only, never the scope: thousands of scopes kept alive
# until the next flush each survived the collector's youngest generation and were walked
# again in the older ones, about 8 µs a request on the event loop (bench/notes.md, item 11).
Entry = tuple[float, str, str, str, str, int, float]


class AccessLog:
    """ASGI wrapper writing one access line per HTTP request through an `AccessLogWriter`."""

    def __init__(self, app: ASGIApp, writer: AccessLogWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._logged(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_on_shutdown(send))
        else:
            await self.app(scope, receive, send)

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        wall, started = time.time(), time.perf_counter()
        status = 500  # what the server answers when the app fails before its answer

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.writer.log(wall, scope, status, time.perf_counter() - started)

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def send_closing(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown."):
                self.writer.close()
            await send(message)

        return send_closing


class AccessLogWriter:
    """The thread that formats, redacts and writes queued entries every `FLUSH_SECONDS`."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.stream = stream or sys.stdout.buffer
        self.queue: deque[Entry] = deque(maxlen=QUEUE_LIMIT)
        self._queue_entry = self.queue.append
        self._stopped = threading.Event()
        self._stamp_second, self._stamp = -1, ""
        self._thread = threading.Thread(target=self._run, name="llavero-access-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is queued."""
        self._stopped.set()
        self._thread.join()
        self.flush()

    def flush(self) -> None:
        """Write what is queued, `CHUNK` lines at a time, letting go of the GIL in between: a
        whole 0.2 s batch (thousands of lines) held it for milliseconds, and every request
        waiting on the event loop meanwhile showed it in the p99 (bench/notes.md, item 11)."""
        pop = self.queue.popleft
        while self.queue:
            lines = [self._line(*pop()) for _ in range(min(CHUNK, len(self.queue)))]
            text = redaction.redact("".join(lines))
            try:
                self.stream.write(text.encode("utf-8", "backslashreplace"))
                self.stream.flush()
            except (OSError, ValueError):  # stdout closed or gone: the lines cannot be written
                pass
            time.sleep(0)  # the event loop's turn, if it is waiting for the GIL

    def log(self, wall: float, scope: Scope, status: int, seconds: float) -> None:
        """Queue the entry of one answered request: all a request pays in the event loop."""
        client = scope.get("client")
        self._queue_entry(
            (
                wall,
                client[0] if client else "-",
                scope.get("method", "-"),
                scope["path"],
                scope.get("http_version", "1.1"),
                status,
                seconds,
            )
        )

    def _line(
        self, wall: float, client: str, method: str, path: str, version: str, status: int,
        seconds: float,
    ) -> str:  # fmt: skip
        # An f-string rather than `%` on a format string: a third less on every line
        # (bench/notes.md, item 15).
        stamp, ms = self._time(wall), seconds * 1000
        return f'[{stamp}] {client} - "{method} {path} HTTP/{version}" {status} {ms:.3f}\n'

    def _time(self, wall: float) -> str:
        """granian's time stamp (local time, to the second), formatted once a second."""
        second = int(wall)
        if second != self._stamp_second:
            stamp = datetime.fromtimestamp(second).astimezone().strftime(TIME_FORMAT)
            self._stamp_second, self._stamp = second, stamp
        return self._stamp
