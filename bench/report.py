"""Write the figures of one run, the machine they come from and how to reproduce each one."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.scenarios import REFERENCE, SCENARIOS

if TYPE_CHECKING:
    from bench.run import Durations, Outcome, Profiles, Verdict

# Figures of the in-process benchmarks by name ("inprocess", "scale"), or why one failed.
Extras = dict[str, Any]
NOTES = Path(__file__).with_name("notes.md")
# Every section a run may write; a run that skips some does not keep their stale copies.
HARNESS_SECTIONS = frozenset(
    {
        "Machine",
        "Method",
        "Targets",
        "Ratios",
        "Scenarios",
        "In-process verify",
        "Instructions per verify",
        "Scale",
    }
)
INPROCESS_TARGET = 3.0
CACHED_KEY_TARGET = 512.0  # bytes, with 1,000,000 keys cached (the default cache size)
SCALE_TARGETS = {  # figure: (target, True when lower is better), SQLite and PostgreSQL alike
    "list_all_projects_ms": (50.0, True),
    "list_one_project_ms": (50.0, True),
    "uncached_verify_p99_ms": (5.0, True),
    "cached_key_bytes": (CACHED_KEY_TARGET, True),
}
SCALE_LABELS = {
    "bulk_create_keys_per_s": ("bulk create", "keys/s"),
    "list_all_projects_ms": ("first page of the key list, every project (admin)", "ms"),
    "list_one_project_ms": ("first page of the key list, one project", "ms"),
    "uncached_verify_p50_ms": ("verify of a key not cached, p50", "ms"),
    "uncached_verify_p99_ms": ("verify of a key not cached, p99", "ms"),
    "cached_key_bytes": ("memory per cached key, every key cached", "bytes"),
}

PACKAGES = ("llavero", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "granian",
            "sqlalchemy", "django", "djangorestframework", "djangorestframework-api-key",
            "gunicorn", "fastapi-keygate")  # fmt: skip


@dataclass(frozen=True)
class TargetRow:
    """One target of issue 17: what was measured, the target, PASS or MISS, how to reproduce
    it, and for a MISS the profile that explains it."""

    title: str
    measured: str
    target: str
    status: str
    command: str
    profile_title: str = ""
    profile: list[str] = field(default_factory=list)


SERVER_PROFILE = "CPU per request beside the baseline (/proc, under wrk), then py-spy"


INSTRUCTIONS = "`.venv-bench/bin/python -m bench.instructions`"
FLOOR = "keyed hash + dict lookup"
PARTS_TITLE = (
    "where its instructions go (callgrind, `{command}`): {what}, a function's count with what "
    "it calls; indented rows are within the row above"
)
PARTS_OF = {
    "http": "an HTTP verify handed to the app with no server",
    "verify": "`Verifier.verify` as `bench.inprocess` calls it",
}


def parts_profile(instructions: Any, scenario: str) -> list[str]:
    """`bench.instructions`' parts of `scenario` as profile lines, or none if it did not run."""
    if not isinstance(instructions, dict) or scenario not in instructions.get("parts", {}):
        return []
    title = PARTS_TITLE.format(command=INSTRUCTIONS.strip("`"), what=PARTS_OF[scenario])
    rows = instructions["parts"][scenario].items()
    return [f"{title}:", *(f"{count:>9,.0f}  {label}" for label, count in rows)]


def http_target_rows(
    verdicts: Sequence[Verdict], profiles: Profiles, instructions: Any
) -> list[TargetRow]:
    """The targets measured over HTTP; against the bare app, the HTTP verify's instruction
    parts explain a MISS beside the server's profile."""
    rows = []
    for v in verdicts:
        c = v.comparison
        profile = profiles.get(c.title, [])
        if c.baseline == REFERENCE and profile:
            profile = [*profile, "", *parts_profile(instructions, "http")]
        rows.append(
            TargetRow(
                c.title,
                "—" if v.ratio is None else f"{v.ratio:.2f}",
                f"≥ {c.target:g}",
                v.status,
                reproduce(c.subject, c.baseline),
                f"{SERVER_PROFILE} (`{c.subject}`)",
                profile,
            )
        )
    return rows


def inprocess_target_row(figures: Any, instructions: Any) -> TargetRow:
    """The in-process target; a MISS is explained by each step's time and, where
    `bench.instructions` ran, by where the instructions go (cProfile sees nothing inside the
    compiled verify)."""
    title, target = "in-process cached verify / keyed hash + dict lookup", f"≤ {INPROCESS_TARGET:g}"
    command = "`.venv-bench/bin/python -m bench.inprocess`"
    if not isinstance(figures, dict):
        return TargetRow(title, "—", target, f"not measured: {figures}", command)
    ratio = figures["ratio"]
    status = "PASS" if ratio <= INPROCESS_TARGET else "MISS"
    steps = figures.get("steps_us", {}).items()
    profile = [f"{cost:9.2f} µs  {name}" for name, cost in steps]
    if parts := parts_profile(instructions, "verify"):
        profile += ["", *parts, f"{instructions['floor']:>9,.0f}  the floor: {FLOOR}"]
    profile_title = "each step of a cached verify timed on its own (best of 5)"
    return TargetRow(title, f"{ratio:.2f}", target, status, command, profile_title, profile)


def memory_target_row(figures: Any) -> TargetRow:
    target = f"≤ {CACHED_KEY_TARGET:g} bytes at 1,000,000 keys"
    runs = (
        [run for run in figures if run.get("cached_key_bytes")] if isinstance(figures, list) else []
    )
    if not runs:
        reason = figures if not isinstance(figures, list) else "no database measured it"
        return TargetRow("bytes per cached key", "—", target, f"not measured: {reason}", "")
    run = runs[0]
    title = f"bytes per cached key ({run['keys']:,} keys cached, tracemalloc)"
    passed = run["cached_key_bytes"] <= CACHED_KEY_TARGET and run["keys"] >= 1_000_000
    status = "PASS" if passed else "MISS"
    if run["keys"] < 1_000_000:
        status += f" (only {run['keys']:,} keys)"
    command = f"`.venv-bench/bin/python -m bench.scale --keys {run['keys']} --no-postgres`"
    profile_title = "tracemalloc: bytes a cached record allocates, by source line (10,000 records)"
    return TargetRow(
        title, f"{run['cached_key_bytes']:,.0f}", target, status, command, profile_title,
        run.get("cache_profile") or [],
    )  # fmt: skip


def target_rows(verdicts: Sequence[Verdict], extras: Extras, profiles: Profiles) -> list[TargetRow]:
    return [
        *http_target_rows(verdicts, profiles, extras.get("instructions")),
        inprocess_target_row(extras.get("inprocess", "not run"), extras.get("instructions")),
        memory_target_row(extras.get("scale", "not run")),
    ]


def print_targets(rows: Sequence[TargetRow]) -> None:
    """The last thing `make bench` prints: every target, PASS or MISS, the profile of a MISS."""
    print(f"\n{'target (issue 17)':<62}{'measured':>9}  {'target':<10}  verdict")
    for row in rows:
        print(
            f"{row.title:<62}{row.measured:>9}  {row.target.split(' bytes')[0]:<10}  {row.status}"
        )
        if row.status.startswith("MISS") and row.profile:
            print(f"    {row.profile_title}:")
            print(*(f"      {line}" for line in row.profile), sep="\n")


def target_section(rows: Sequence[TargetRow]) -> list[str]:
    lines = [
        "| target | measured | target | verdict | reproduce |",
        "| --- | ---: | ---: | --- | --- |",
        *(f"| {r.title} | {r.measured} | {r.target} | {r.status} | {r.command} |" for r in rows),
    ]
    for row in rows:
        if row.status.startswith("MISS") and row.profile:
            lines += ["", f"Why *{row.title}* is missed — {row.profile_title}:", "", "```text",
                      *row.profile, "```"]  # fmt: skip
    return lines


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (done.stdout or done.stderr).splitlines()[0].split(" Copyright")[0]


def package_versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def machine() -> list[str]:
    load = ", ".join(f"{n:.2f}" for n in os.getloadavg())
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores (shared with other work; load average "
        f"{load} when the report was written)",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"- Load generator: {wrk_version()}",
        f"- Packages: {package_versions()}",
    ]


RUN = ".venv-bench/bin/python -m bench.run"


def reproduce(*names: str) -> str:
    return f"`{RUN} " + " ".join(f"--only {n}" for n in names) + "`"


def summary(scenario: str) -> str:
    doc = SCENARIOS[scenario].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def p99_pair(outcomes: dict[str, Outcome], subject: str, baseline: str) -> str:
    """p99 of both sides, for the comparisons that also claim a lower p99."""
    sides = [outcomes.get(subject), outcomes.get(baseline)]
    if any(side is None or side.problem is not None or not side.runs for side in sides):
        return "—"
    return " / ".join(f"{side.p99_ms:.1f}" for side in sides if side is not None)


def ratio_rows(verdicts: Sequence[Verdict], outcomes: dict[str, Outcome]) -> list[str]:
    rows = [
        "| comparison | ratio | target | p99 ms (subject / baseline) | verdict | reproduce |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for v in verdicts:
        c = v.comparison
        ratio = "—" if v.ratio is None else f"{v.ratio:.2f}"
        target = "—" if c.target is None else f"≥ {c.target:g}"
        if c.lower_p99:
            target += " and lower p99"
        p99 = p99_pair(outcomes, c.subject, c.baseline)
        rows.append(f"| {c.title} | {ratio} | {target} | {p99} | {v.status} | "
                    f"{reproduce(c.subject, c.baseline)} |")  # fmt: skip
    return rows


def scenario_rows(outcomes: dict[str, Outcome]) -> list[str]:
    rows = ["| scenario | what it is | req/s | p50 ms | p99 ms | errors | reproduce |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for o in outcomes.values():
        figures = (
            f"{o.problem} | | | |"
            if o.problem is not None
            else f"{o.rps:,.0f} | {o.p50_ms:.2f} | {o.p99_ms:.2f} | {o.errors}"
        )
        rows.append(f"| `{o.name}` | {summary(o.name)} | {figures} | {reproduce(o.name)} |")
    return rows


def verdict(value: float, target: float, lower_is_better: bool) -> str:
    passed = value < target if lower_is_better else value >= target
    return "PASS" if passed else "MISS"


def inprocess_rows(figures: Any) -> list[str]:
    if not isinstance(figures, dict):
        return [f"Not measured: {figures}."]
    ratio = figures["ratio"]
    return [
        "| verify µs/call | keyed hash + dict lookup µs/call | ratio | target | verdict | "
        "reproduce |",
        "| ---: | ---: | ---: | ---: | --- | --- |",
        f"| {figures['verify_us']:.2f} | {figures['floor_us']:.2f} | {ratio:.2f} | "
        f"≤ {INPROCESS_TARGET:g} | {'PASS' if ratio <= INPROCESS_TARGET else 'MISS'} | "
        "`.venv-bench/bin/python -m bench.inprocess` |",
        "",
        "Where a cached verify's time goes (each step timed on its own, best of 5):",
        "",
        "| step | µs |",
        "| --- | ---: |",
        *(f"| {name} | {cost:.2f} |" for name, cost in figures.get("steps_us", {}).items()),
    ]


INSTRUCTION_ROWS = {
    "http": "`POST /v1/keys:verify` through the app `llavero serve` runs, no server",
    "bare": "the same loop and messages, handed to the bare ASGI app",
    "llavero_http": "Llavero's own part of an HTTP verify (the two above apart)",
    "verify": "`Verifier.verify`, as `bench.inprocess` times it",
    "floor": FLOOR,
}


def instruction_rows(figures: Any) -> list[str]:
    """`bench.instructions`: callgrind's counts, the same whatever else the machine runs."""
    if not isinstance(figures, dict):
        return [f"Not measured: {figures}."]
    command = INSTRUCTIONS
    return [
        "Counted by callgrind (`bench/instructions.py` says how): unlike the times above, "
        "these do not move with the machine's load, so they show whether a change made "
        "Llavero's own work smaller.",
        "",
        "| what | instructions a call | reproduce |",
        "| --- | ---: | --- |",
        *(
            f"| {label} | {figures[name]:,.0f} | {command} |"
            for name, label in INSTRUCTION_ROWS.items()
        ),  # fmt: skip
        f"| HTTP verify / bare app, in process | {figures['http_over_bare']:.2f} × | {command} |",
        f"| verify / floor | {figures['verify_over_floor']:.2f} × | {command} |",
        *(
            line
            for scenario in figures.get("parts", {})
            for line in ["", "```text", *parts_profile(figures, scenario), "```"]
        ),
    ]


def scale_rows(figures: Any) -> list[str]:
    if not isinstance(figures, list):
        return [f"Not measured: {figures}."]
    rows = ["| database | keys | figure | value | target | verdict | reproduce |",
            "| --- | ---: | --- | ---: | ---: | --- | --- |"]  # fmt: skip
    for run in figures:
        for name, (label, unit) in SCALE_LABELS.items():
            value = run.get(name)
            if value is None:  # memory is measured on the first database only
                continue
            shown = f"{value:,.0f} {unit}" if unit != "ms" else f"{value:.2f} ms"
            target, status = "—", "context"
            if name in SCALE_TARGETS and not (
                name == "uncached_verify_p99_ms" and run["database"] != "SQLite"
            ):
                limit, lower = SCALE_TARGETS[name]
                target = f"{'<' if lower else '≥'} {limit:g} {unit}"
                status = verdict(value, limit, lower)
            command = f"`.venv-bench/bin/python -m bench.scale --keys {run['keys']}`"
            rows.append(f"| {run['database']} | {run['keys']:,} | {label} | {shown} | {target} | "
                        f"{status} | {command} |")  # fmt: skip
    return rows


def print_extras(extras: Extras) -> None:
    if "inprocess" in extras:
        print("\n" + "\n".join(inprocess_rows(extras["inprocess"])))
    if "instructions" in extras:
        print("\n" + "\n".join(instruction_rows(extras["instructions"])))
    if "scale" in extras:
        print("\n" + "\n".join(scale_rows(extras["scale"])))


def kept_sections(out: Path, ours: Set[str]) -> list[str]:
    """The `## ` sections of the page this run does not write (the gateway's, maintained from
    `bench.gateway`): kept as they are, after this run's own."""
    if not out.exists():
        return []
    kept: list[str] = []
    keep = False
    for line in out.read_text().splitlines():
        if line.startswith("## "):
            keep = line[3:].strip() not in ours
        if keep:
            kept.append(line)
    return [""] + kept if kept else []


def write_report(
    out: Path,
    outcomes: dict[str, Outcome],
    verdicts: Sequence[Verdict],
    targets: Sequence[TargetRow],
    extras: Extras,
    durations: Durations,
    args: Sequence[str],
) -> None:
    command = " ".join([RUN, *args])
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` after `sh bench/setup.sh` (`make bench` runs both; "
        "`bench/README.md` says what each figure means). Absolute numbers drift with the "
        "machine's load; the ratios are the claim.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## Method",
        "",
        f"wrk `-t1 -c32 --latency` on loopback from its own process; every server up at once; "
        f"a {durations.warmup_s:g} s warm-up each, then {durations.rounds} round(s) of "
        f"{durations.measure_s:g} s per server, servers taking turns within a round (every other "
        "round in reverse order). Figures are "
        "medians over rounds; a ratio is the median of the ratios of each round. An error is a "
        "socket error or an answer that is not a 200 with the expected body.",
        "",
        "## Targets",
        "",
        "The targets of issue 17, each measured side by side in this run; for every MISS, the "
        "profile that explains it.",
        "",
        *target_section(targets),
        "",
        "## Ratios",
        "",
        *ratio_rows(verdicts, outcomes),
        "",
        "## Scenarios",
        "",
        *scenario_rows(outcomes),
        "",
    ]
    if "inprocess" in extras:
        lines += ["## In-process verify", "", *inprocess_rows(extras["inprocess"]), ""]
    if "instructions" in extras:
        rows = instruction_rows(extras["instructions"])
        lines += ["## Instructions per verify", "", *rows, ""]
    if "scale" in extras:
        lines += ["## Scale", "", *scale_rows(extras["scale"]), ""]
    if NOTES.exists():
        lines += NOTES.read_text().splitlines()
    ours = HARNESS_SECTIONS | {line[3:].strip() for line in lines if line.startswith("## ")}
    lines += kept_sections(out, ours)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
