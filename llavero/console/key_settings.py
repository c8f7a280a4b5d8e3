"""The key detail page's settings form: filled in from a key, read back from what was posted
(the changes it makes to the key), and a service error located on the input and line it came
from."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from starlette.datastructures import FormData

from llavero.core import restrictions
from llavero.core.plans import LIMIT_NAMES
from llavero.service import models

NO_APPLICATION_RESTRICTION: Final = "none"
APPLICATION_KINDS: Final = (NO_APPLICATION_RESTRICTION, *restrictions.APPLICATION_RESTRICTIONS)
LINE_KINDS: Final = tuple(kind.name for kind in restrictions.KINDS if kind.form == "lines")
"""Restriction kinds typed into a text area, one entry per line."""
BLANK_ROWS: Final = 2
"""Empty rows offered under the Android apps and API targets already set (no script needed)."""
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
    application = form_text(form, "application")
    if application not in APPLICATION_KINDS:
        application = NO_APPLICATION_RESTRICTION
    android = _rows(form, {"package": "android_package", "sha1": "android_sha1"})
    targets = _rows(form, {"service": "api_service", "methods": "api_methods"})
    settings = SettingsForm(
        values={
            "display_name": form_text(form, "display_name"),
            "environment": form_text(form, "environment"),
            "expire_time": form_text(form, "expire_time"),
            "application": application,
            **{kind: form_text(form, kind) for kind in LINE_KINDS},
            "android_apps": _padded(android, {"package": "", "sha1": ""}),
            "api_targets": _padded(targets, {"service": "", "methods": ""}),
            "limits": {name: form_text(form, f"limit_{name}") for name in LIMIT_NAMES},
            "annotations": form_text(form, "annotations"),
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


def form_text(form: FormData, name: str) -> str:
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
