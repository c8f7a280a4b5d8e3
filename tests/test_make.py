"""The README promises two commands on a fresh clone: `make run` serves, `make test` lints, type
checks and runs the tests. A dry run (`make -n`) shows what each would do without doing it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dry_run(target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_serves_the_console_and_the_api() -> None:
    assert ".venv/bin/llavero serve" in dry_run("run")


def test_make_test_lints_type_checks_and_runs_the_tests() -> None:
    commands = dry_run("test")
    for step in ("ruff check", "ruff format --check", "mypy", "-m pytest"):
        assert step in commands, f"make test does not run {step}"
