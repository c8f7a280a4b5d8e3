"""The verify hot path runs compiled by mypyc (setup.py), and its pure-Python fallback passes
the core tests too: `LLAVERO_PURE_PYTHON=1` imports the `.py` files instead."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llavero

ROOT = Path(__file__).resolve().parents[2]
# The tests of the compiled modules, run again on their `.py` files.
PURE_RUN = [
    "tests/api/test_fast_verify.py",
    "tests/core/test_leases.py",
    "tests/core/test_limits.py",
    "tests/core/test_verify_limits.py",
    "tests/core/test_verify_restrictions.py",
    "tests/core/test_cache.py",
    "tests/core/test_keyformat.py",
    "tests/core/test_meter.py",
    f"{Path(__file__).relative_to(ROOT)}::test_each_compiled_module_is_the_variant_asked_for",
]


def compiled_modules() -> list[str]:
    """`setup.COMPILED` as module names, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    found = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED"
    )
    paths: list[str] = ast.literal_eval(found)
    return [path.removesuffix(".py").replace("/", ".") for path in paths]


def test_each_compiled_module_is_the_variant_asked_for() -> None:
    suffix = ".py" if llavero.PURE_PYTHON else ".so"
    for name in compiled_modules():
        assert str(importlib.import_module(name).__file__).endswith(suffix), name


@pytest.mark.skipif(llavero.PURE_PYTHON, reason="the compiled build is not in use")
def test_no_compiled_module_is_older_than_its_source() -> None:
    """An extension built before its `.py` last changed runs the old code: `make install`."""
    for name in compiled_modules():
        built = Path(str(importlib.import_module(name).__file__))
        source = built.parent / (name.rpartition(".")[2] + ".py")
        assert built.stat().st_mtime >= source.stat().st_mtime, f"{name}: run `make install`"


@pytest.mark.skipif(llavero.PURE_PYTHON, reason="this run is the pure-Python one")
def test_the_pure_python_fallback_passes_the_core_tests() -> None:
    env = {**os.environ, "LLAVERO_PURE_PYTHON": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PURE_RUN]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
