"""The documentation is tested against the code, as Datasette's is: a setting, a CLI command or a
SPEC path that the docs do not mention fails here, and so does a CLI reference that was not
regenerated after a command changed."""

from __future__ import annotations

import difflib
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest
from pydantic_core import PydanticUndefined
from typer.main import get_command

from llavero.application import create_app
from llavero.cli import app as cli_app
from llavero.config import Settings
from llavero.core import restrictions
from llavero.core.codes import Code
from llavero.core.restrictions import Kind
from llavero.service import Llavero

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATOR = ROOT / "scripts" / "gen_cli_docs.py"

# The REST paths of SPEC.md ("REST API" table), as (method, path).
SPEC_OPERATIONS = (
    ("POST", "/v1/projects"),
    ("GET", "/v1/projects"),
    ("GET", "/v1/projects/{project}"),
    ("PATCH", "/v1/projects/{project}"),
    ("DELETE", "/v1/projects/{project}"),
    ("POST", "/v1/projects/{project}/keys"),
    ("GET", "/v1/projects/{project}/keys"),
    ("GET", "/v1/keys/{key}"),
    ("PATCH", "/v1/keys/{key}"),
    ("DELETE", "/v1/keys/{key}"),
    ("POST", "/v1/keys/{key}:undelete"),
    ("POST", "/v1/keys/{key}:rotate"),
    ("POST", "/v1/keys:verify"),
    ("POST", "/v1/keys/{key}:testRestrictions"),
    ("POST", "/v1/usage:report"),
    ("GET", "/v1/forward-auth"),
    ("POST", "/v1/keys:lookup"),
    ("GET", "/v1/keys/{key}/usage"),
    ("GET", "/v1/projects/{project}/usage"),
    ("POST", "/v1/billingAccounts"),
    ("GET", "/v1/billingAccounts"),
    ("PUT", "/v1/projects/{project}/billingInfo"),
    ("GET", "/v1/plans"),
    ("GET", "/v1/audit"),
)
DOCUMENTED_OPERATION = re.compile(r"^### (GET|POST|PUT|PATCH|DELETE) (/v1/\S+)$", re.MULTILINE)
RELATIVE_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)\s#]+)")


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def app_operations(llavero: Llavero) -> set[tuple[str, str]]:
    schema = create_app(llavero).openapi()
    return {(method.upper(), path) for path, item in schema["paths"].items() for method in item}


# --- settings -----------------------------------------------------------------------------


def variable(field: str) -> str:
    return f"LLAVERO_{field.upper()}"


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"LLAVERO_[A-Z0-9_]+", read("configuration.md")))
    missing = [variable(name) for name in Settings.model_fields if variable(name) not in documented]
    assert not missing, (
        f"docs/configuration.md does not describe {', '.join(missing)}: add a table row with "
        "the variable, its default and what it does"
    )


def test_configuration_names_no_setting_that_does_not_exist() -> None:
    real = {variable(name) for name in Settings.model_fields}
    documented = set(re.findall(r"`(LLAVERO_[A-Z0-9_]+)`", read("configuration.md")))
    assert sorted(documented - real) == []


@pytest.mark.parametrize(
    "name",
    [
        name
        for name, field in Settings.model_fields.items()
        if field.default not in (None, PydanticUndefined) and not isinstance(field.default, list)
    ],
)
def test_configuration_states_the_default(name: str) -> None:
    default = Settings.model_fields[name].default
    if isinstance(default, bool):  # as an environment variable is written
        default = str(default).lower()
    rows = [line for line in read("configuration.md").splitlines() if f"`{variable(name)}`" in line]
    assert rows, f"docs/configuration.md has no table row for {variable(name)}"
    assert f"`{default}`" in rows[0], (
        f"docs/configuration.md gives another default for {variable(name)} than "
        f"llavero/config.py (`{default}`)"
    )


# --- the command line ---------------------------------------------------------------------


def test_every_cli_command_is_documented() -> None:
    generator = load_generator()
    reference = read("cli.md")
    missing = [
        " ".join(("llavero", *path))
        for path in generator.command_paths(get_command(cli_app))
        if f"## `{' '.join(('llavero', *path))}`" not in reference
    ]
    assert not missing, (
        f"docs/cli.md lacks {', '.join(missing)}; regenerate it: {generator.REGENERATE}"
    )


def test_cli_reference_is_what_the_generator_writes_now() -> None:
    generator = load_generator()
    current, expected = read("cli.md"), generator.render()
    if current != expected:
        diff = difflib.unified_diff(
            current.splitlines(),
            expected.splitlines(),
            "docs/cli.md",
            "--help now",
            n=1,
            lineterm="",
        )
        pytest.fail(
            "docs/cli.md differs from the CLI's --help output; regenerate and commit it:\n"
            f"    {generator.REGENERATE}\n" + "\n".join(list(diff)[:60])
        )


# --- the REST API -------------------------------------------------------------------------


def test_every_spec_path_of_the_app_is_documented(llavero: Llavero) -> None:
    served = app_operations(llavero)
    reference = read("api.md")
    missing = [
        f"{method} {path}"
        for method, path in SPEC_OPERATIONS
        if (method, path) in served and f"### {method} {path}\n" not in reference
    ]
    assert not missing, f"docs/api.md has no section for {', '.join(missing)}"


def test_api_reference_documents_only_what_the_app_serves(llavero: Llavero) -> None:
    served = app_operations(llavero)
    documented = set(DOCUMENTED_OPERATION.findall(read("api.md")))
    assert documented, "docs/api.md has no '### METHOD /v1/...' sections"
    assert sorted(documented - served) == []


# --- links --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda page: page.name
)
def test_relative_links_lead_to_files(page: Path) -> None:
    targets = RELATIVE_LINK.findall(page.read_text(encoding="utf-8"))
    broken = [target for target in targets if not (page.parent / target).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


# --- verify codes -------------------------------------------------------------------------

TABLE_ROW = re.compile(r"^\| (.+?) \|(.*)\|$", re.MULTILINE)
CODE_NAME = re.compile(r"`([A-Z_]+)`")


def code_rows(page: str) -> dict[Code, list[str]]:
    """The table rows of `page` that name verify codes in their first cell, by code."""
    rows: dict[Code, list[str]] = {}
    for first, rest in TABLE_ROW.findall(read(page)):
        cells = [cell.strip() for cell in rest.split("|")]
        for name in CODE_NAME.findall(first):
            if name in Code.__members__:
                rows[Code(name)] = cells
    return rows


def test_api_reference_explains_every_verify_code() -> None:
    assert sorted(code_rows("api.md")) == sorted(Code)


def test_gateway_refusals_table_is_the_codes_table() -> None:
    rows = code_rows("gateway.md")
    assert sorted(rows) == sorted(code for code in Code if code is not Code.VALID)
    for code, (status, google_status, message) in rows.items():
        assert (int(status), google_status) == (
            code.answer.http_status,
            f"`{code.answer.google_status}`",
        ), code
        assert ("Retry-After" in message) == bool(code.answer.retry_limits), code


# --- restriction kinds --------------------------------------------------------------------

KINDS_TABLE = re.compile(r"<!-- restriction kinds -->\n(.*?)\n<!-- /restriction kinds -->", re.S)


def kinds_table(kinds: Sequence[Kind]) -> str:
    """The table of restriction kinds docs/restrictions.md shows, from the registry."""
    rows = [
        "| restriction | kind | refused with | the request must carry |",
        "| --- | --- | --- | --- |",
    ]
    for kind in kinds:
        role = "application" if kind.application else "API"
        carried = ", ".join(f"`{name}`" for name in kind.context)
        rows.append(f"| `{kind.name}` | {role} | `{kind.code}` | {carried} |")
    return "\n".join(rows)


def test_restriction_kinds_table_is_the_registry() -> None:
    found = KINDS_TABLE.search(read("restrictions.md"))
    assert found, "docs/restrictions.md has no <!-- restriction kinds --> table"
    assert found.group(1) == kinds_table(restrictions.KINDS)
