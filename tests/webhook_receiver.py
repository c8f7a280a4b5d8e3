"""A webhook receiver on loopback for tests: verifies every delivery with the `standardwebhooks`
library, the way a user's endpoint would, and keeps what it accepted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    raw: bytes


@dataclass
class Receiver:
    url: str = ""
    secrets: list[str] = field(default_factory=list)
    status: int = 204  # what it answers; 503 plays an endpoint that is down
    accepted: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # deliveries whose signature failed
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], raw: bytes) -> int:
        with self.lock:
            self.attempts += 1
            if self.status >= 300:
                return self.status
            for secret in self.secrets:
                try:
                    body = Webhook(secret).verify(raw, headers)
                except WebhookVerificationError:
                    continue
                self.accepted.append(Received(headers["webhook-id"], body, raw))
                return self.status
            self.refused.append(headers.get("webhook-id", ""))
            return 400

    def types(self) -> list[str]:
        with self.lock:
            return [item.body["type"] for item in self.accepted]

    def ids(self) -> list[str]:
        with self.lock:
            return [item.webhook_id for item in self.accepted]


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = state.handle({k.lower(): v for k, v in self.headers.items()}, raw)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/llavero"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def parse(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(raw)
    return value
