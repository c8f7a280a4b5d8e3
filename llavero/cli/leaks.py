"""`scan`: find Llavero keys and tokens in files, git history or standard input."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from llavero.cli.scan import Finding, Scanner
from llavero.cli.shared import CLI, Db, Json, err, out, settings_for
from llavero.config import Settings
from llavero.errors import LlaveroError
from llavero.service import Llavero


def scan(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files and directories (default: .).")
    ] = None,
    git: Annotated[
        bool, typer.Option("--git", help="Scan every commit of the git repositories at PATH.")
    ] = False,
    stdin: Annotated[bool, typer.Option("--stdin", help="Scan standard input.")] = False,
    no_ignore: Annotated[
        bool, typer.Option("--no-ignore", help="Scan what .gitignore leaves out too.")
    ] = False,
    db: Db = None,
    as_json: Json = False,
    as_sarif: Annotated[bool, typer.Option("--sarif", help="Print SARIF 2.1.0.")] = False,
) -> None:
    """Find Llavero keys and tokens (valid checksum only); exit 0 none, 1 found, 2 error.

    With a database (--db, LLAVERO_DATABASE_URL or the default SQLite file) each key found is
    named by its project, id and state. A whole key string is never printed."""
    from llavero.cli import scan_report
    from llavero.cli.scan import GitError, Scanner

    if as_json and as_sarif:
        raise typer.BadParameter("give one of --json and --sarif", param_hint="--sarif")
    settings = settings_for(db)
    scanner = Scanner(settings.key_prefix)
    targets = paths or ([] if stdin else [Path(".")])
    try:
        findings = list(scanner.scan_stream(sys.stdin.buffer)) if stdin else []
        findings += _scan_targets(scanner, targets, git=git, gitignore=not no_ignore)
    except (OSError, GitError) as error:
        err.print(f"error: {_scan_error(error)}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    findings = _identified(findings, settings, explicit=db is not None)
    if as_json or as_sarif:
        document = scan_report.as_sarif(findings) if as_sarif else scan_report.as_json(findings)
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for finding in findings:
            where = f"{finding.path}:{finding.line}"
            if finding.commit:
                where = f"{finding.commit[:12]}:{where}"
            out.print(f"{where}: {scan_report.describe(finding)}", markup=False, highlight=False)
        err.print(f"{len(findings)} found", markup=False, highlight=False)
    raise typer.Exit(1 if findings else 0)


def _scan_targets(
    scanner: Scanner, targets: Sequence[Path], *, git: bool, gitignore: bool
) -> list[Finding]:
    """Scan with a progress bar on a terminal (on stderr, so piped output stays clean)."""
    from rich.progress import Progress

    from llavero.cli.scan import git_blobs, total_size

    for target in targets:
        if not target.exists():
            raise FileNotFoundError(2, "No such file or directory", str(target))
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        found: list[Finding] = []
        for target in targets:
            if git:
                blobs = git_blobs(target)
                task = progress.add_task(f"{target} (git)", total=len(blobs))
                step = partial(progress.advance, task)
                found += scanner.scan_git(target, progress=step, blobs=blobs)
            else:
                size = total_size([target], gitignore=gitignore) if err.is_terminal else None
                task = progress.add_task(str(target), total=size)
                step = partial(progress.advance, task)
                found += scanner.scan_paths([target], gitignore=gitignore, progress=step)
        return found


def _scan_error(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def _identified(findings: list[Finding], settings: Settings, *, explicit: bool) -> list[Finding]:
    """Findings named by key, project and state, when there is a database to ask; a scan goes
    on (with a warning) when the database cannot be read."""
    default_file = settings.data_dir / "llavero.sqlite3"
    configured = explicit or settings.database_url is not None or default_file.exists()
    if not findings or not configured:
        return findings
    try:
        llavero = Llavero(settings)
    except (ValidationError, ArgumentError, ValueError, OSError) as error:
        err.print(f"warning: no key lookup: {type(error).__name__}", markup=False)
        return findings
    try:
        known = llavero.leaks.identify(CLI, [f.secret for f in findings if f.kind == "key"])
    except (LlaveroError, OperationalError, ProgrammingError) as error:
        err.print(f"warning: no key lookup: {type(error).__name__}", markup=False)
        return findings
    finally:
        llavero.close()
    return [
        finding.identified(hit.key, hit.project, hit.state)
        if (hit := known.get(finding.secret))
        else finding
        for finding in findings
    ]
