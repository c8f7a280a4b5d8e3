"""The layer rule of docs/architecture.md, enforced: import-linter's contracts in pyproject.toml
(`[tool.importlinter]`), and modules small enough to read in one sitting."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "llavero"
MAX_LINES = 400
# Being split on other branches (restriction kinds: `concepts`; the limiters: `redis`,
# `hotpath`); drop each entry when its split lands.


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the package found first on the path from `root` (its pyproject.toml)."""
    return subprocess.run(
        [Path(sys.executable).parent / "lint-imports", "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def test_every_import_keeps_the_layer_rule() -> None:
    """`lint-imports` says which import breaks which contract."""
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_rule_bites_on_an_import_that_breaks_it(tmp_path: Path) -> None:
    """A copy of the package whose core reaches up into the service layer and into SQLAlchemy:
    both contracts must fail, naming the import."""
    shutil.copytree(PACKAGE, tmp_path / "llavero", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "llavero" / "core" / "keyformat.py").open("a") as module:
        module.write("\nimport sqlalchemy  # noqa\n\nfrom llavero.service import context  # noqa\n")
    run = lint_imports(tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "llavero.core.keyformat -> llavero.service.context" in run.stdout
    assert "llavero.core.keyformat -> sqlalchemy" in run.stdout


def test_no_module_is_longer_than_a_sitting() -> None:
    lengths = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
    }
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"split these (> {MAX_LINES} lines): {too_long}"
