"""The README promises two commands on a fresh clone: `make run` serves, `make test` lints, type
checks and runs the tests. A dry run (`make -n`) shows what each would do without doing it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dry_run(target: str, *flags: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-n", *flags, target], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_serves_the_console_and_the_api() -> None:
    assert ".venv/bin/llavero serve" in dry_run("run")


def test_make_test_lints_type_checks_and_runs_the_tests() -> None:
    commands = dry_run("test")
    for step in ("ruff check", "ruff format --check", "mypy", "-m pytest"):
        assert step in commands, f"make test does not run {step}"


def test_make_run_installs_only_what_serving_needs() -> None:
    # -B: as on a fresh clone, where no install stamp exists yet.
    installs = [line for line in dry_run("run", "-B").splitlines() if "pip install" in line]
    assert installs, "make run installs nothing"
    assert not [line for line in installs if "[test]" in line], installs


def test_make_test_adds_the_test_extras() -> None:
    assert "-e '.[test]'" in dry_run("test", "-B")


def test_serving_dependencies_hold_no_test_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    serving = {requirement.split(">")[0].split("[")[0] for requirement in project["dependencies"]}
    tools = {requirement.split(">")[0] for requirement in project["optional-dependencies"]["test"]}
    assert tools.isdisjoint(serving)
    assert {"pytest", "mypy", "playwright", "schemathesis", "ruff"} <= tools


def test_building_the_package_prints_no_deprecation() -> None:
    """pip asks setuptools three times per install; each deprecation box was printed thrice."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()
