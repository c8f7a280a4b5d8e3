"""Key strings in requests and logs (docs/security.md): one reader decides which query parameter
is the key, and the same reader strips it; every log line is redacted of key shapes.

`llavero gateway` and `llavero serve` run as their own processes at log level debug, their whole
output kept. Each spelling of `?key=` authenticates, and then the upstream (a real server on
loopback recording what it got) sees no trace of the key; keys in paths are refused by the
gateway and redacted from serve's access log; finally every byte the servers wrote is searched
for every key handed out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from uvicorn.logging import AccessFormatter

from llavero.core.keyformat import generate
from llavero.edges import credentials, redaction
from llavero.service import Actor
from tests.security.servers import (
    UPSTREAM_KEY,
    Instance,
    Upstream,
    llavero_process,
    recording_upstream,
    send,
)

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
# Every spelling of the parameter `key` a server or proxy on the way might read as `key`.
SPELLINGS = [
    "key={k}",
    "%6Bey={k}",
    "%6bey={k}",
    "k%65y={k}",
    "ke%79={k}",
    "%6B%65%79={k}",
    "%4B%45%59={k}",
    "KEY={k}",
    "Key={k}",
    "kEy={k}",
    "%254Bey={k}",
    "%25%36%42ey={k}",
    "%EF%BD%8B%EF%BD%85%EF%BD%99={k}",
    "key%20={k}",
    "+key={k}",
    "key%00={k}",
    "key={q}",
    "x=1;key={k}",
    "x=1;%6Bey={k}",
    "key={k}&key={k}",
    "key=&key={k}",
    "key={k}&KEY={k}&%6Bey={k}",
]


def spelled(spelling: str, key: str) -> str:
    return spelling.format(k=key, q=quote(key, safe=""))


def secret_part(key: str) -> bytes:
    """What follows `llv_`: found in any encoding of the underscore or prefix."""
    return key.split("_", 1)[1].encode()


@pytest.fixture
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return Instance(tmp_path_factory.mktemp("key-strings"))


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with recording_upstream("/api") as recorder:
        yield recorder


def debug_env(instance: Instance) -> dict[str, str]:
    return {**instance.env, "LLAVERO_LOG_LEVEL": "debug"}


def test_the_gateway_strips_every_spelling_and_logs_none(
    instance: Instance, upstream: Upstream
) -> None:
    key = instance.new_key()
    env = {**debug_env(instance), "GEMINI_API_KEY": UPSTREAM_KEY}
    command = ["gateway", "--upstream", upstream.url]
    with llavero_process(command, env, instance.root / "gateway.log", "127.0.0.1") as gateway:
        for spelling in SPELLINGS:
            query = f"alt=sse&{spelled(spelling, key)}&after=1"
            answer = send(gateway.port, f"GET {GENERATE}?{query} HTTP/1.1", [])
            assert answer.status == 200, spelling
            received = upstream.received[-1]
            assert secret_part(key) not in received.raw, spelling
            assert received.request_line.startswith(f"GET /api{GENERATE}?alt=sse&"), spelling
            assert "after=1" in received.request_line, spelling
        count = len(upstream.received)
        with_header = [("x-goog-api-key", key)]
        for target in (
            f"/v1beta/models/{key}:generateContent",
            f"/v1beta/models/{quote(key, safe='')}:generateContent",
            f"/v1beta/models/x{key.replace('_', '%5F')}",
            f"{GENERATE}?api_key={key}",
            f"{GENERATE}?key[]={key}",
            f"{GENERATE}?x={quote(key, safe='')}",
        ):
            answer = send(gateway.port, f"GET {target} HTTP/1.1", with_header)
            assert answer.status == 400, target
            assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
            assert "key string" in answer.json()["error"]["message"]
        assert len(upstream.received) == count, "a refused request reached the upstream"
    output = gateway.output()
    assert b"GET /v1beta/models/" in output  # the access log was on: the lines were written
    assert b"[REDACTED]" in output
    assert secret_part(key) not in output
    assert UPSTREAM_KEY.encode() not in output


def test_serve_forward_auth_reads_every_spelling_and_logs_none(instance: Instance) -> None:
    key = instance.new_key()
    service = instance.service()
    token = service.tokens.create(Actor.system("edge-test"), ["admin"]).token
    service.close()
    with llavero_process(["serve"], debug_env(instance), instance.root / "serve.log") as served:
        for spelling in SPELLINGS:
            query = f"alt=sse&{spelled(spelling, key)}"
            nginx = [("X-Original-URI", f"{GENERATE}?{query}")]
            assert send(served.port, "GET /v1/forward-auth HTTP/1.1", nginx).status == 200
            envoy = f"GET /v1/forward-auth{GENERATE}?{query} HTTP/1.1"
            assert send(served.port, envoy, []).status == 200, spelling
        bearer = [("Authorization", f"Bearer {token}")]
        for path in (f"/v1/keys/{key}", f"/v1/keys/{quote(key, safe='')}", f"/v1/keys/{key}x"):
            assert send(served.port, f"GET {path} HTTP/1.1", bearer).status in (400, 404)
            assert send(served.port, f"GET {path} HTTP/1.1", []).status == 401
        envoy_path = f"GET /v1/forward-auth/v1beta/{key}/x HTTP/1.1"
        assert send(served.port, envoy_path, [("x-goog-api-key", key)]).status == 200
    output = served.output()
    assert b"/v1/keys/" in output  # granian's access lines were written, redacted
    assert b"[REDACTED]" in output
    assert secret_part(key) not in output
    assert secret_part(token) not in output


def test_one_reader_finds_and_strips_the_key() -> None:
    key = generate("llv")
    for spelling in SPELLINGS:
        query = f"a=1&{spelled(spelling, key)}"
        assert credentials.key_from({}, query) == key, spelling
        assert credentials.without_key(query) in ("a=1", "a=1&x=1"), spelling
        assert key not in credentials.redacted_query(query, "[REDACTED]"), spelling
    assert credentials.without_key("a=%2F;b=2&key=x&c") == "a=%2F;b=2&c"  # the rest as sent
    assert credentials.without_key("monkey=1&keys=2") == "monkey=1&keys=2"


def test_every_log_record_of_any_logger_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """The record factory: messages, tuple and dict arguments, tracebacks, stacks; uvicorn's
    access formatter still gets its five arguments."""
    redaction.install()
    key, token = generate("llv"), generate("llvtok")
    encoded = key.replace("_", "%5F")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("anything.at.all").warning("key %s in %s", key, f"/p?%6Bey={key}")
        logging.getLogger("granian.access").info("%(path)s", {"path": f"/v1/keys/{token}"})
        logging.getLogger("_granian").error(f"raw {encoded} and {key}x")
        try:
            raise ValueError(f"bad {key}")
        except ValueError:
            logging.getLogger("llavero").exception("failed")
        logging.getLogger("llavero").info("stack", stack_info=True)
        logging.getLogger("x").info("%s", {"nested": key})
    record = logging.getLogRecordFactory()(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", f"/x?key={key}", "1.1", 200), None,
    )  # fmt: skip
    line = AccessFormatter("%(request_line)s", use_colors=False).format(record)
    formatter = logging.Formatter("%(message)s")
    text = line + "".join(formatter.format(record) for record in caplog.records)
    for secret in (key, token):
        assert secret_part(secret).decode() not in text
    assert text.count("[REDACTED]") >= 7
    assert "GET /x?key=" in line


def test_redaction_leaves_ordinary_lines_alone() -> None:
    line = '127.0.0.1 - "GET /v1/keys?page_token=abc&page_size=10 HTTP/1.1" 200 snake_case_name'
    assert redaction.redact(line) == line
