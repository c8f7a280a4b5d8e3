"""`keys`: create, list, change, verify and dry-run API keys."""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from llavero.cli.shared import CLI, Db, Json, cell, emit, opened, out
from llavero.core.codes import State
from llavero.core.context import CONTEXT_FIELDS
from llavero.service.pagination import every_item

app = typer.Typer(no_args_is_help=True, help="API keys.")
KEY_COLUMNS = ("id", "project", "display_name", "last4", "state", "environment", "create_time")


def _pairs(values: Sequence[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} must read NAME=VALUE", param_hint=option)
        pairs[name] = value
    return pairs


def _json_option(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"is not valid JSON: {error.msg}", param_hint=option) from None


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True, err=True))
    return sys.stdin.readline().strip()


@app.command("create")
def keys_create(
    project: Annotated[str, typer.Option(help="Project id.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    environment: Annotated[str | None, typer.Option(help="e.g. production.")] = None,
    expire_time: Annotated[str | None, typer.Option(help="RFC 3339 time.")] = None,
    restrictions: Annotated[str | None, typer.Option(help="Restrictions as JSON.")] = None,
    annotation: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable.")] = None,
    limit: Annotated[list[str] | None, typer.Option(help="rpm=N etc., repeatable.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a key; the key string is shown once."""
    with opened(db) as llavero:
        created = llavero.keys.create(
            CLI,
            project,
            display_name=name,
            environment=environment,
            expire_time=expire_time,
            restrictions=_json_option(restrictions, "--restrictions"),
            annotations=_pairs(annotation or [], "--annotation"),
            limits=_limit_pairs(limit or []),
        )
        if as_json:
            emit(created, True)
            return
        emit(created.key, False, KEY_COLUMNS)
        out.print(f"key (shown once): {created.key_string}", markup=False, highlight=False)


def _limit_pairs(values: Sequence[str]) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for name, value in _pairs(values, "--limit").items():
        pairs[name] = int(value) if value.isdigit() else value
    return pairs


@app.command("list")
def keys_list(
    project: Annotated[str, typer.Option(help="Project id, or - for all.")] = "-",
    show_deleted: Annotated[bool, typer.Option("--show-deleted")] = False,
    filter: Annotated[
        str | None, typer.Option(help="e.g. 'state=ACTIVE environment=production name:gemini'.")
    ] = None,
    environment: Annotated[str | None, typer.Option(help="Only keys bound to it.")] = None,
    expiring_within_days: Annotated[
        int | None,
        typer.Option(min=0, max=3650, help="Only keys that expire within N days (or have)."),
    ] = None,
    order_by: Annotated[
        str,
        typer.Option(
            help="'create_time desc' (newest first), 'create_time', 'display_name' or 'project'."
        ),
    ] = "create_time desc",
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List keys (masked: only the last 4 characters), newest first unless --order-by."""
    terms = [filter or ""]
    if environment is not None:
        terms.append(f"environment={environment}")
    if expiring_within_days is not None:
        terms.append(f"expiring_within_days={expiring_within_days}")
    with opened(db) as llavero:
        keys = every_item(
            lambda token: llavero.keys.list(
                CLI,
                project,
                show_deleted=show_deleted,
                filter=" ".join(terms).strip() or None,
                page_token=token,
                page_size=1000,
                order_by=order_by,
            )
        )
        emit(keys, as_json, KEY_COLUMNS + ("expire_time",))


@app.command("show")
def keys_show(key_id: str, db: Db = None, as_json: Json = False) -> None:
    """Show one key."""
    with opened(db) as llavero:
        key = llavero.keys.get(CLI, key_id)
        if as_json:
            emit(key, True)
            return
        table = Table(show_header=False)
        for name, value in key.model_dump(mode="json").items():
            table.add_row(name, _leak_cell(value) if name == "leak" else cell(value))
        out.print(table)


def _leak_cell(leak: dict[str, Any] | None) -> str:
    """A leak in words: when, where and who found it (rotate the key: docs/leaks.md)."""
    if leak is None:
        return ""
    where = f" at {leak['url']}" if leak.get("url") else ""
    source = f" (reported by {leak['source']})" if leak.get("source") else ""
    return f"LEAKED {leak['time']}{where}{source}"


@app.command("update")
def keys_update(
    key_id: str,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    restrictions: Annotated[
        str | None, typer.Option(help="The complete new restrictions as JSON; '{}' lifts them.")
    ] = None,
    environment: Annotated[
        str | None, typer.Option(help="Bind to an environment; '' unbinds.")
    ] = None,
    expire_time: Annotated[str | None, typer.Option(help="RFC 3339 time.")] = None,
    no_expire: Annotated[bool, typer.Option("--no-expire", help="Remove the expiry.")] = False,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="A disabled key fails verify.")
    ] = None,
    annotation: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE, repeatable; replaces all annotations.")
    ] = None,
    limit: Annotated[
        list[str] | None, typer.Option(help="rpm=N etc., repeatable; replaces the key's limits.")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Change a key; only the options given change."""
    if expire_time is not None and no_expire:
        raise typer.BadParameter("give --expire-time or --no-expire, not both")
    changes: dict[str, Any] = {}
    if name is not None:
        changes["display_name"] = name
    if restrictions is not None:
        changes["restrictions"] = _json_option(restrictions, "--restrictions")
    if environment is not None:
        changes["environment"] = environment
    if expire_time is not None or no_expire:
        changes["expire_time"] = expire_time
    if enable is not None:
        changes["state"] = State.ACTIVE if enable else State.DISABLED
    if annotation:
        changes["annotations"] = _pairs(annotation, "--annotation")
    if limit:
        changes["limits"] = _limit_pairs(limit)
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option")
    with opened(db) as llavero:
        key = llavero.keys.update(CLI, key_id, changes)
        emit(key, as_json, KEY_COLUMNS + ("expire_time", "restrictions"))


@app.command("delete")
def keys_delete(key_id: str, db: Db = None, as_json: Json = False) -> None:
    """Delete a key: it stops verifying at once; undelete within 30 days."""
    with opened(db) as llavero:
        emit(llavero.keys.delete(CLI, key_id), as_json, KEY_COLUMNS + ("purge_time",))


@app.command("undelete")
def keys_undelete(key_id: str, db: Db = None, as_json: Json = False) -> None:
    """Restore a deleted key."""
    with opened(db) as llavero:
        emit(llavero.keys.undelete(CLI, key_id), as_json, KEY_COLUMNS)


@app.command("rotate")
def keys_rotate(
    key_id: str,
    grace_period: Annotated[
        int, typer.Option("--grace-period", help="Seconds the old string keeps working.")
    ] = 0,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """A new key string for the same key; the old one works for the grace period."""
    with opened(db) as llavero:
        created = llavero.keys.rotate(CLI, key_id, grace_period)
        if as_json:
            emit(created, True)
            return
        emit(created.key, False, KEY_COLUMNS + ("previous_expire_time",))
        out.print(f"new key (shown once): {created.key_string}", markup=False, highlight=False)


def context_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with one option per request context field (llavero.core.context), before its
    `db` option; it receives them as one `context` mapping."""
    signature = inspect.signature(command, eval_str=True)
    own = [param for name, param in signature.parameters.items() if name != "context"]
    split = [param.name for param in own].index("db")
    options = [
        inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[str | None, typer.Option(help=field.description)],
        )
        for field in CONTEXT_FIELDS
    ]

    @functools.wraps(command)
    def with_context(**values: Any) -> None:
        context = {field.name: values.pop(field.name) for field in CONTEXT_FIELDS}
        command(**values, context=context)

    parameters = [*own[:split], *options, *own[split:]]
    with_context.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[param.replace(kind=inspect.Parameter.KEYWORD_ONLY) for param in parameters]
    )
    return with_context


@app.command("verify")
@context_options
def keys_verify(
    key: Annotated[
        str | None, typer.Argument(help="The key; read from stdin when omitted (safer).")
    ] = None,
    db: Db = None,
    as_json: Json = False,
    *,
    context: Mapping[str, Any],
) -> None:
    """Verify a key as the hot path would; exit code 0 only when VALID."""
    from llavero.core.verify import VerifyRequest

    secret = key if key not in (None, "-") else _read_secret("Key")
    with opened(db) as llavero:
        request = VerifyRequest(key=secret or "", **context)
        result = llavero.verifier.verify(request).to_dict()
        emit(result, as_json, ("valid", "code", "key_id", "project", "plan", "environment"))
    if not result["valid"]:
        raise typer.Exit(3)


@app.command("test")
@context_options
def keys_test(
    key_id: str,
    db: Db = None,
    as_json: Json = False,
    *,
    context: Mapping[str, str | None],
) -> None:
    """Dry-run a verify context against a key: which rule allows or refuses it, and why.
    Counts no usage; exit code 0 only when the request would be allowed."""
    with opened(db) as llavero:
        result = llavero.keys.test_restrictions(CLI, key_id, context)
        if as_json:
            emit(result, True)
        else:
            emit(result.checks, False, ("restriction", "allowed", "matched_rule", "reason"))
            verdict = "allowed" if result.allowed else f"refused: {result.code}"
            out.print(f"verdict: {verdict}", markup=False, highlight=False)
    if not result.allowed:
        raise typer.Exit(3)
