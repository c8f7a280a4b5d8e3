"""The access log of `llavero serve`: granian's line format, keys never written, every line out
by the end of the lifespan."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from llavero.core import keyformat
from llavero.edges.access_log import AccessLog, AccessLogWriter

LINE = re.compile(
    r'^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] testclient - "(\w+) (\S+) HTTP/1\.1" '
    r"(\d{3}) \d+\.\d{3}$"
)


async def answer(request: Request) -> PlainTextResponse:
    if request.path_params["rest"] == "boom":
        raise RuntimeError("the app failed before answering")
    return PlainTextResponse("ok", status_code=201)


def logged(*paths: str) -> list[tuple[str, str, str]]:
    """The access lines written for GET `paths`, read once the lifespan has ended."""
    stream = io.BytesIO()
    app = AccessLog(Starlette(routes=[Route("/{rest:path}", answer)]), AccessLogWriter(stream))
    with TestClient(app, raise_server_exceptions=False) as client:
        for path in paths:
            client.get(path)
    lines = stream.getvalue().decode().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return [match.groups() for match in matches if match]


def test_one_line_per_request_in_granians_format_with_the_status_sent() -> None:
    assert logged("/a", "/b?page_token=x") == [("GET", "/a", "201"), ("GET", "/b", "201")]


def test_a_failing_app_is_logged_as_the_500_the_server_answers() -> None:
    assert logged("/boom") == [("GET", "/boom", "500")]


@pytest.mark.parametrize(
    "spelled",
    [lambda key: key, lambda key: key.replace("_", "%5F"), lambda key: f"x?key={key}"],
    ids=["plain", "percent-encoded", "decoded-query"],
)
def test_keys_in_paths_are_redacted(spelled: Callable[[str], str]) -> None:
    key = keyformat.generate("llv")
    [(_, path, _)] = logged(f"/v1/keys/{spelled(key)}".replace("?", "%3F"))
    assert key.split("_", 1)[1] not in path
    assert "[REDACTED]" in path
