"""Gateway path confinement (docs/security.md): `llavero gateway --upstream http://host/api`, as
its own process, answers 400 to every path that could lead out of `/api`, and what reaches the
upstream (a real server on loopback recording each request line) always stays under `/api/`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llavero.edges.upstream_path import refusal_reason
from tests.security.servers import (
    UPSTREAM_KEY,
    Instance,
    Server,
    Upstream,
    llavero_process,
    recording_upstream,
    send,
)

ESCAPES = [
    "/../secret",
    "/v1/../../secret",
    "/%2e%2e/secret",
    "/%2E%2e/secret",
    "/%2e%2E/secret",
    "/.%2e/secret",
    "/%2e./secret",
    "/..%2fsecret",
    "/..%2Fsecret",
    "/v1/..%2f..%2fsecret",
    "/%2e%2e%2fsecret",
    "/..%5csecret",
    "/..%5Csecret",
    "/..\\secret",
    "/v1\\..\\..\\secret",
    "/%252e%252e/secret",
    "/%252e%252e%252fsecret",
    "/%25252e%25252e/secret",
    "/..%252fsecret",
    "//secret",
    "//evil.example/secret",
    "/v1//../secret",
    "/./secret",
    "/.",
    "/..",
    "/v1/..",
    "/%EF%BC%8E%EF%BC%8E/secret",  # fullwidth full stops: NFKC reads ".."
    "/%E2%80%A5/secret",  # two dot leader: NFKC reads ".."
    "/..%EF%BC%8Fsecret",  # fullwidth solidus: NFKC reads "/"
    "/..%EF%B9%A8secret",  # small reverse solidus: NFKC reads "\\"
    "/%00/../secret",
    "/..;/secret",  # a path parameter: Tomcat reads "..;" as ".."
    "/v1/%2e%2e;x/../secret",
    "/..%20/secret",
]
ALLOWED = [
    "/v1beta/models/gemini-2.5-flash:generateContent",
    "/v1beta/models/gemini-2%2e5-flash:generateContent",
    "/v1/a..b/c",
    "/v1/.well-known/x",
    "/v1/files/",
    # Ids shaped a little like keys (OpenAI's `resp_…`, a 38-character id without a key's
    # checksum) are not key strings: they pass.
    "/v1/responses/resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "/v1/things/abc_" + "A" * 38,
]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return Instance(tmp_path_factory.mktemp("confinement"))


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with recording_upstream("/api") as recorder:
        yield recorder


@pytest.fixture(scope="module")
def key(instance: Instance) -> str:
    return instance.new_key()


@pytest.fixture(scope="module")
def gateway(instance: Instance, upstream: Upstream, key: str) -> Iterator[Server]:
    env = {**instance.env, "GEMINI_API_KEY": UPSTREAM_KEY}
    command = ["gateway", "--upstream", upstream.url]
    with llavero_process(command, env, instance.root / "gateway.log", "127.0.0.1") as server:
        yield server


def assert_confined(upstream: Upstream) -> None:
    for recorded in upstream.received:
        target = recorded.request_line.split(" ")[1]
        assert target.startswith("/api/"), recorded.request_line
        assert refusal_reason(target) is None, recorded.request_line


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS"])
def test_a_path_that_could_leave_the_base_is_refused_with_400(
    gateway: Server, upstream: Upstream, key: str, path: str, method: str
) -> None:
    before = len(upstream.received)
    headers = [("x-goog-api-key", key), ("Access-Control-Request-Method", "POST")]
    answer = send(gateway.port, f"{method} {path} HTTP/1.1", headers)
    assert answer.status == 400
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"].startswith("path: ")
    assert len(upstream.received) == before
    assert_confined(upstream)


@pytest.mark.parametrize("path", ["/．．/secret", "/..／secret", "*", "secret"])
def test_raw_lookalikes_and_odd_targets_never_reach_the_upstream(
    gateway: Server, upstream: Upstream, key: str, path: str
) -> None:
    """Raw UTF-8 bytes, and targets that are no origin-form path: the server or its router
    may answer them itself (400, 404); they never reach the upstream."""
    before = len(upstream.received)
    line = f"GET {path} HTTP/1.1".encode()
    assert send(gateway.port, line, [("x-goog-api-key", key)]).status in (400, 404)
    assert len(upstream.received) == before


def test_an_absolute_form_target_keeps_the_upstream_host(
    gateway: Server, upstream: Upstream, key: str
) -> None:
    answer = send(gateway.port, "GET http://evil.example/x HTTP/1.1", [("x-goog-api-key", key)])
    assert answer.status == 200
    assert upstream.received[-1].request_line == "GET /api/x HTTP/1.1"
    assert "evil" not in upstream.received[-1].raw.decode("latin-1")


@pytest.mark.parametrize("path", ALLOWED)
def test_ordinary_paths_go_upstream_byte_for_byte_under_the_base(
    gateway: Server, upstream: Upstream, key: str, path: str
) -> None:
    answer = send(gateway.port, f"GET {path}?alt=sse HTTP/1.1", [("x-goog-api-key", key)])
    assert answer.status == 200
    assert upstream.received[-1].request_line == f"GET /api{path}?alt=sse HTTP/1.1"
    assert_confined(upstream)


def test_refusal_reasons_name_what_is_wrong() -> None:
    assert refusal_reason("/a/../b") == "must not carry a . or .. segment"
    assert refusal_reason("/a%2fb") == "must not carry an encoded / or \\"
    assert refusal_reason("/a\\b") == "must not carry a backslash or a control character"
    assert refusal_reason("/a//b") == "must not carry an empty segment (//)"
    assert refusal_reason("a") == "must start with /"
    assert refusal_reason("/v1beta/models/m:generateContent") is None
