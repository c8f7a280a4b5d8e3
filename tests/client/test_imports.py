"""`llavero.client` depends on httpx alone: importing it loads nothing of the server."""

from __future__ import annotations

import re
import subprocess
import sys

SERVER_ONLY = (
    "fastapi",
    "sqlalchemy",
    "starlette",
    "pydantic",
    "redis",
    "argon2",
    "jinja2",
    "babel",
)


def imported_modules(statement: str) -> set[str]:
    """Every module a fresh interpreter imports to run `statement` (`-X importtime` names them)."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(re.findall(r"^import time:.*\|\s*(\S+)$", run.stderr, flags=re.MULTILINE))


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    loaded = imported_modules("import llavero.client")
    assert "httpx" in loaded and "llavero.client" in loaded
    server = sorted(m for m in loaded if m.split(".")[0] in SERVER_ONLY)
    assert server == []
    ours = sorted(m for m in loaded if m.split(".")[0] == "llavero")
    assert all(
        m.startswith("llavero.client") for m in ours if m not in ("llavero", "llavero.errors")
    )


def test_the_check_sees_a_server_import() -> None:
    """The check above would fail if the client reached into the API (it did until now)."""
    loaded = imported_modules("import llavero.client, llavero.application")
    assert {"fastapi", "pydantic"} <= {m.split(".")[0] for m in loaded}
