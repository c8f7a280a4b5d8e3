"""The README promises two commands on a fresh clone: `make run` serves, `make test` lints, type
checks and runs the tests. A dry run (`make -n`) shows what each would do without doing it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


IMPORTED_DISTRIBUTIONS = """
import importlib, pkgutil, sys
before = set(sys.modules)  # what the interpreter loads at start (site's .pth files), not llavero
import llavero
for module in pkgutil.walk_packages(llavero.__path__, "llavero."):
    if not module.name.endswith(".__main__"):  # runs the CLI
        importlib.import_module(module.name)
print("\\n".join(sorted({name.split(".")[0] for name in set(sys.modules) - before})))
"""


def serving_closure() -> set[str]:
    """Every distribution `make run` installs: llavero's requirements outside its extras,
    then theirs (with the extras asked for), all the way down."""
    wanted, seen = [("llavero", "")], set()
    while wanted:
        name, extra = wanted.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for line in metadata.requires(name) or ():
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                continue
            if not requirement.marker and extra:
                continue  # asked for by the distribution itself, met when extra was ""
            child = canonicalize_name(requirement.name)
            wanted += [(child, "")] + [(child, each) for each in requirement.extras]
    return {name for name, _ in seen}


def test_serving_imports_only_what_serving_installs() -> None:
    """The suite runs on the test install, which adds the test extras: a package that one of
    them brings and that the served code then imports (Authlib takes httpx2 when it finds it,
    and falls back to httpx with a deprecation warning when it does not) would be tested on
    one install and shipped on another."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_DISTRIBUTIONS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    owners = metadata.packages_distributions()
    imported = {
        canonicalize_name(distribution)
        for module in result.stdout.split()
        for distribution in owners.get(module, ())
    }
    imported.discard("llavero")
    assert imported, "no distribution found for what llavero imports"
    assert imported - serving_closure() == set()
