"""The key detail page, `/app/keys/{key_id}`: what a key is, its advanced credential settings
(restrictions, environment, expiry, per-key limits, annotations), the dry-run tester and the
key's audit trail.

The settings form posts everything at once and the service validates it whole. On a mistake the
page comes back with what the user typed and the service's field (`restrictions.allowed_ips[1]`)
pinned to the input and line it came from: nothing is written and nothing typed is lost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from llavero.console import web
from llavero.console.pages.keys import leak_context
from llavero.console.plans import plan_display_name
from llavero.core import context, restrictions
from llavero.core.plans import LIMIT_NAMES
from llavero.errors import InvalidArgument, LlaveroError, NotFound, PermissionDenied
from llavero.service import dryrun, models

router = APIRouter(include_in_schema=False)

PAGE_PATH: Final = "/app/keys/{key_id}"
NO_APPLICATION_RESTRICTION: Final = "none"
APPLICATION_KINDS: Final = (NO_APPLICATION_RESTRICTION, *restrictions.APPLICATION_RESTRICTIONS)
LINE_KINDS: Final = tuple(kind.name for kind in restrictions.KINDS if kind.form == "lines")
"""Restriction kinds typed into a text area, one entry per line."""
BLANK_ROWS: Final = 2
"""Empty rows offered under the Android apps and API targets already set (no script needed)."""
AUDIT_EVENTS: Final = 50
ERROR_CODES: Final = {
    "PERMISSION_DENIED": "permission_denied",
    "NOT_FOUND": "not_found",
    "FAILED_PRECONDITION": "failed_precondition",
}
SERVICE_FIELD: Final = re.compile(
    r"restrictions\.(?P<kind>\w+)(?:\[(?P<index>\d+)\])?(?:\.(?P<part>\w+))?"
)
ROW_INPUTS: Final = {
    "package_name": "android_package",
    "sha1_fingerprint": "android_sha1",
    "service": "api_service",
    "methods": "api_methods",
}
"""Parts of an Android app or API target entry, and the input of its row that holds each."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """Where a refused value sits on the page: the input's id, the line of a text area, and
    which explanation to show (the template holds one translated message per kind)."""

    input: str
    kind: str
    line: int | None = None


@dataclass(slots=True)
class SettingsForm:
    """The settings as the form shows them, and the changes they make to the key.

    `origins` maps a restriction kind to the line (text areas) or row (Android apps, API
    targets) each entry sent to the service came from, so an error on entry `i` finds its input.
    """

    values: dict[str, Any]
    changes: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, list[int]] = field(default_factory=dict)
    annotation_lines: dict[str, int] = field(default_factory=dict)


@router.get(PAGE_PATH)
def key_page(current: web.SignedInPage, key_id: str) -> HTMLResponse:
    notice = current.request.query_params.get("notice")
    return _render(current, key_id, notice="saved" if notice == "saved" else None)


@router.post(PAGE_PATH)
async def save_settings(current: web.SignedInAction, key_id: str) -> Response:
    form = await current.request.form()
    settings = settings_from_form(form)
    try:
        stored = settings_of(current.llavero.keys.get(current.actor, key_id))
        if settings.values["expire_time"] == stored.values["expire_time"]:
            # Unchanged: the stored time keeps its seconds, and a key that has already
            # expired can still be renamed or restricted without choosing a new expiry.
            del settings.changes["expire_time"]
        current.llavero.keys.update(current.actor, key_id, settings.changes)
    except InvalidArgument as error:
        return _render(
            current, key_id, settings=settings, error=locate(error.field, settings), status_code=400
        )
    except LlaveroError as error:
        return _render(
            current,
            key_id,
            settings=settings,
            failure=_failure(error),
            status_code=error.http_status,
        )
    return current.redirect(PAGE_PATH.format(key_id=key_id) + "?notice=saved#settings")


@router.post(PAGE_PATH + "/test")
async def test_request(current: web.SignedInAction, key_id: str) -> Response:
    """The dry-run: posted (it carries referrers and app identities) but writes nothing."""
    form = await current.request.form()
    typed = {name: _text(form, name) for name in context.NAMES}
    try:
        result = current.llavero.keys.test_restrictions(
            current.actor, key_id, {name: value for name, value in typed.items() if value}
        )
    except InvalidArgument as error:
        test_error = FieldError(f"test-{error.field}", "test_field")
        return _render(current, key_id, test=typed, test_error=test_error, status_code=400)
    return _render(current, key_id, test=typed, test_result=explained(result, typed))


def _render(
    current: web.Page,
    key_id: str,
    *,
    settings: SettingsForm | None = None,
    error: FieldError | None = None,
    failure: str | None = None,
    notice: str | None = None,
    test: Mapping[str, str] | None = None,
    test_result: dict[str, Any] | None = None,
    test_error: FieldError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    llavero, actor = current.llavero, current.actor
    try:
        key = llavero.keys.get(actor, key_id)
        project = llavero.projects.get(actor, key.project)
        events = llavero.audit.list(actor, target=key.id, page_size=AUDIT_EVENTS).items
    except (NotFound, PermissionDenied) as missing:
        status = missing.http_status
        return current.render("error.html", status_code=status, status=status)
    return current.render(
        "key.html",
        status_code=status_code,
        headers=dict(web.NO_STORE),
        now=llavero.ctx.clock.now(),
        key=key.model_dump(),
        leak=leak_context(key),
        project={
            "id": project.id,
            "display_name": project.display_name,
            "number": project.number,
            "plan": plan_display_name(llavero, project.plan),
        },
        form=(settings or settings_of(key)).values,
        application_kinds=APPLICATION_KINDS,
        limit_names=LIMIT_NAMES,
        error=error,
        failure=failure,
        notice=notice,
        test=test or dict.fromkeys(context.NAMES, ""),
        test_result=test_result,
        test_error=test_error,
        events=[event.model_dump() for event in events],
        usage_url=f"/app/usage?key={key.id}",
        read_only=_read_only(current, key.project),
    )


def _read_only(current: web.Page, project_id: str) -> bool:
    """A viewer sees the settings but cannot save them."""
    writable = current.llavero.members.writable(current.actor)
    return writable is not None and project_id not in writable


def _failure(error: LlaveroError) -> str:
    return ERROR_CODES.get(error.status, "failed_precondition")


# --- the settings form ---------------------------------------------------------------------


def settings_of(key: models.Key) -> SettingsForm:
    """The form filled in from the key as stored."""
    kept = key.restrictions
    application = next(
        (kind for kind in restrictions.APPLICATION_RESTRICTIONS if kept.get(kind)),
        NO_APPLICATION_RESTRICTION,
    )
    android = [
        {"package": app["package_name"], "sha1": app["sha1_fingerprint"]}
        for app in kept.get(restrictions.ANDROID_APPS, [])
    ]
    targets = [
        {"service": target["service"], "methods": " ".join(target.get("methods", []))}
        for target in kept.get(restrictions.API_TARGETS, [])
    ]
    expire = key.expire_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if key.expire_time else ""
    return SettingsForm(
        values={
            "display_name": key.display_name,
            "environment": key.environment or "",
            "expire_time": expire,
            "application": application,
            **{kind: "\n".join(kept.get(kind, [])) for kind in LINE_KINDS},
            "android_apps": _padded(android, {"package": "", "sha1": ""}),
            "api_targets": _padded(targets, {"service": "", "methods": ""}),
            "limits": {name: str(key.limits.get(name, "")) for name in LIMIT_NAMES},
            "annotations": "\n".join(f"{name}={value}" for name, value in key.annotations.items()),
        }
    )


def settings_from_form(form: FormData) -> SettingsForm:
    """What the user typed, kept as typed for the page, and the update it asks of the service.

    Values go to the service unconverted where it can judge them (a limit of `abc` stays the
    text `abc`), so every refusal comes from the service and names its field.
    """
    application = _text(form, "application")
    if application not in APPLICATION_KINDS:
        application = NO_APPLICATION_RESTRICTION
    android = _rows(form, {"package": "android_package", "sha1": "android_sha1"})
    targets = _rows(form, {"service": "api_service", "methods": "api_methods"})
    settings = SettingsForm(
        values={
            "display_name": _text(form, "display_name"),
            "environment": _text(form, "environment"),
            "expire_time": _text(form, "expire_time"),
            "application": application,
            **{kind: _text(form, kind) for kind in LINE_KINDS},
            "android_apps": _padded(android, {"package": "", "sha1": ""}),
            "api_targets": _padded(targets, {"service": "", "methods": ""}),
            "limits": {name: _text(form, f"limit_{name}") for name in LIMIT_NAMES},
            "annotations": _text(form, "annotations"),
        }
    )
    values = settings.values
    chosen: dict[str, Any] = {}
    if application in LINE_KINDS:
        chosen[application] = _lines(
            values[application], settings.origins.setdefault(application, [])
        )
    elif application == restrictions.ANDROID_APPS:
        chosen[application] = _android_apps(android, settings.origins.setdefault(application, []))
    api_targets = _api_targets(targets, settings.origins.setdefault(restrictions.API_TARGETS, []))
    if api_targets:
        chosen[restrictions.API_TARGETS] = api_targets
    settings.changes = {
        "display_name": values["display_name"],
        "environment": values["environment"] or None,
        "expire_time": _expiry(values["expire_time"]),
        "restrictions": chosen,
        "limits": {name: _limit(text) for name, text in values["limits"].items() if text},
        "annotations": _annotations(values["annotations"], settings.annotation_lines),
    }
    return settings


def locate(service_field: str | None, settings: SettingsForm) -> FieldError:
    """The input (and line) a service error names; the whole form when it names none we show."""
    name = service_field or ""
    if name in ("display_name", "environment", "expire_time"):
        return FieldError(name, name)
    if name.startswith("limits."):
        limit = name.removeprefix("limits.")
        return FieldError(f"limit_{limit}", "limit") if limit in LIMIT_NAMES else _whole_form()
    if name == "annotations" or name.startswith("annotations."):
        line = settings.annotation_lines.get(name.removeprefix("annotations."))
        return FieldError("annotations", "annotations", line)
    match = SERVICE_FIELD.match(name)
    if match is None:
        return _whole_form()
    kind, index, part = match.group("kind", "index", "part")
    origins = settings.origins.get(kind, [])
    position = origins[int(index)] if index is not None and int(index) < len(origins) else None
    if kind in LINE_KINDS:
        return FieldError(kind, kind if position is not None else "entries", position)
    if position is not None and part in ROW_INPUTS:
        return FieldError(f"{ROW_INPUTS[part]}-{position}", ROW_INPUTS[part])
    if kind in (restrictions.ANDROID_APPS, restrictions.API_TARGETS):
        return FieldError(kind, "entries")
    return _whole_form()


def _whole_form() -> FieldError:
    return FieldError("settings", "invalid")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _rows(form: FormData, inputs: Mapping[str, str]) -> list[dict[str, str]]:
    """Rows of repeated inputs (`android_package`, `android_sha1`, ...), blank rows dropped."""
    columns = {
        name: [value.strip() for value in form.getlist(input_name) if isinstance(value, str)]
        for name, input_name in inputs.items()
    }
    count = max((len(values) for values in columns.values()), default=0)
    rows = [
        {name: values[i] if i < len(values) else "" for name, values in columns.items()}
        for i in range(count)
    ]
    return [row for row in rows if any(row.values())]


def _padded(rows: Sequence[dict[str, str]], blank: dict[str, str]) -> list[dict[str, str]]:
    return [*rows, *(dict(blank) for _ in range(BLANK_ROWS))]


def _lines(text: str, origins: list[int]) -> list[str]:
    """Non-blank lines; `origins` gets each entry's line number (from 1)."""
    entries: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            entries.append(line.strip())
            origins.append(number)
    return entries


def _android_apps(rows: Sequence[Mapping[str, str]], origins: list[int]) -> list[dict[str, str]]:
    apps = []
    for position, row in enumerate(rows):
        apps.append({"package_name": row["package"], "sha1_fingerprint": row["sha1"]})
        origins.append(position)
    return apps


def _api_targets(rows: Sequence[Mapping[str, str]], origins: list[int]) -> list[dict[str, Any]]:
    """Methods are typed separated by spaces or commas; none means every method."""
    targets = []
    for position, row in enumerate(rows):
        methods = [method for method in re.split(r"[\s,]+", row["methods"]) if method]
        target: dict[str, Any] = {"service": row["service"]}
        if methods:
            target["methods"] = methods
        targets.append(target)
        origins.append(position)
    return targets


def _expiry(text: str) -> datetime | str | None:
    """A `datetime-local` value is read as UTC (the page says so); other text goes to the
    service as typed, which refuses it naming `expire_time`."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _limit(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _annotations(text: str, lines: dict[str, int]) -> dict[str, str]:
    """`name=value`, one per line; a line without `=` is a name with an empty value, which the
    service then judges like any other name."""
    annotations: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, _, value = line.partition("=")
        annotations[name.strip()] = value.strip()
        lines[name.strip()] = number
    return annotations


# --- the dry-run -----------------------------------------------------------------------------


def explained(result: dryrun.RestrictionTest, typed: Mapping[str, str]) -> dict[str, Any]:
    """The dry-run's verdict as the template words it: one line per check, in the page's
    language. The service's own reasons are English sentences, so each line is rebuilt from
    the check's kind, verdict and matched rule, and from what the request carried."""
    return {
        "allowed": result.allowed,
        "code": result.code,
        "lines": [_line(check, typed) for check in result.checks],
    }


CONTEXT_OF: Final = {kind.name: kind.context for kind in restrictions.KINDS}
"""What a request must carry for each restriction; a refusal without it says it is missing."""


def _line(check: dryrun.Check, typed: Mapping[str, str]) -> dict[str, Any]:
    needed = CONTEXT_OF.get(check.restriction, ())
    missing = next((name for name in needed if not typed.get(name)), None)
    if check.allowed:
        reason = "matched" if check.matched_rule else "passed"
    else:
        reason = f"missing_{missing}" if missing else "refused"
    return {
        "restriction": check.restriction,
        "allowed": check.allowed,
        "rule": check.matched_rule,
        "reason": reason,
    }
