"""The `llavero` command. Every command but `serve` acts on the configured database directly,
through the service layer, as the local operator: no server needs to run.

Output is a table, or JSON with `--json`; an error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
import typer.core

from llavero.cli import billing, keys, leaks, projects, serving, tokens, usage, users, webhooks
from llavero.cli.shared import err

__all__ = ["app", "main"]


class OneLineErrors(typer.core.TyperGroup):
    """Usage errors (a missing option, bad JSON) as one line on stderr, like every other error,
    instead of Typer's usage block; exit codes stay Typer's (2 for usage)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = (args, prog_name, complete_var, False, windows_expand_args)
        if not standalone_mode:
            return super().main(*run, **extra)
        try:
            code = super().main(*run, **extra)
        except typer.TyperException as error:  # Typer's usage errors derive from it
            if type(error).__name__ == "NoArgsIsHelpError":  # as Typer tells it (not public)
                typer.echo(error.format_message(), err=True)  # its message is the help
            else:
                err.print(f"error: {error.format_message()}", markup=False, highlight=False)
            code = error.exit_code
        except typer.Abort:
            err.print("error: aborted", markup=False, highlight=False)
            code = 1
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, add_completion=False, help=__doc__)
app.command()(serving.serve)
app.command()(serving.gateway)
app.command()(usage.usage)
app.command()(leaks.scan)
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.add_typer(projects.app, name="projects")
app.add_typer(keys.app, name="keys")
app.add_typer(serving.app, name="db")
app.add_typer(billing.plans_app, name="plans")
app.add_typer(billing.app, name="billing")
app.add_typer(webhooks.app, name="webhooks")


def main() -> None:
    app()
