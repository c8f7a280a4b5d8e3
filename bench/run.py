"""Entry point: `python -m bench.run [--quick] [--only NAME ...]` (run from the repository root).

All servers start first and stay up; then each round loads every server in turn with wrk.
Ratios are taken within a round and the median over rounds is reported, so the drift of a
shared, noisy machine hits both sides of every ratio alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import wrk
from bench.profile import cpu_split, server_profile
from bench.report import Extras, print_extras, print_targets, target_rows, write_report
from bench.scenarios import REFERENCE, SCENARIOS, Skipped
from bench.servers import REPO, ServerFailed, bench_env, serving_pid

CONNECTIONS = 32
WRK_THREADS = 1
ACCESS_LOG_TARGET = 0.9  # "costs almost nothing": at most a tenth of the throughput


@dataclass(frozen=True)
class Durations:
    warmup_s: float
    measure_s: float
    rounds: int


FULL = Durations(warmup_s=2, measure_s=4, rounds=5)
QUICK = Durations(warmup_s=1, measure_s=2, rounds=1)


@dataclass(frozen=True)
class Comparison:
    """Throughput of `subject` divided by that of `baseline`, and the ratio it must reach; with
    `lower_p99` the subject's p99 latency must also be below the baseline's.

    Without a target the ratio is context: how much the server or the framework alone allows.
    """

    title: str
    subject: str
    baseline: str
    target: float | None = None
    lower_p99: bool = False


LLAVERO = "llavero_verify"  # `llavero serve` as it ships: granian, access log, database limits
LLAVERO_UVICORN = "llavero_verify_uvicorn"
# The targets first: `make bench` ends with their verdicts, and a profile for each MISS.
TARGETS = (
    Comparison(
        "verify as shipped / bare ASGI app reading the body (granian)", LLAVERO, REFERENCE, 0.75
    ),
    Comparison(
        "access log: verify as shipped / the same without it",
        LLAVERO,
        "llavero_verify_no_access_log",
        ACCESS_LOG_TARGET,
    ),
    Comparison(
        "Redis limiter / memory limiter (llavero serve, HTTP)",
        "llavero_verify_redis",
        "llavero_verify_memory",
        0.5,
    ),
)
COMPARISONS = (
    *TARGETS,
    Comparison("database limiter (shipped) / memory limiter", LLAVERO, "llavero_verify_memory"),
    Comparison(
        "Redis limits: --workers 2 / one worker",
        "llavero_verify_redis_workers2",
        "llavero_verify_redis",
    ),
    Comparison("verify as shipped / bare FastAPI route (granian)", LLAVERO, "bare_granian"),
    Comparison(
        "verify as shipped (uvicorn) / bare FastAPI route (uvicorn)",
        LLAVERO_UVICORN,
        "bare_uvicorn",
    ),
    Comparison("bare FastAPI route / bare ASGI app (granian)", "bare_granian", REFERENCE),
    Comparison("server for Llavero: granian / uvicorn", LLAVERO, LLAVERO_UVICORN),
    Comparison("server alone: bare (granian) / bare (uvicorn)", "bare_granian", "bare_uvicorn"),
    Comparison("verify / DRF + djangorestframework-api-key", LLAVERO, "drf_api_key", 25, True),
    Comparison(
        "verify / fastapi-keygate (both uvicorn)", LLAVERO_UVICORN, "fastapi_keygate", 25, True
    ),
    Comparison(
        "verify / FastAPI + SQLAlchemy lookup (both uvicorn)",
        LLAVERO_UVICORN,
        "plain_sqlalchemy",
        25,
        True,
    ),
    Comparison("ceiling: bare (uvicorn) / DRF + api-key", "bare_uvicorn", "drf_api_key"),
    Comparison("ceiling: bare (uvicorn) / fastapi-keygate", "bare_uvicorn", "fastapi_keygate"),
    Comparison("ceiling: bare (uvicorn) / SQLAlchemy lookup", "bare_uvicorn", "plain_sqlalchemy"),
)


@dataclass
class Outcome:
    """What happened to one scenario: a run per round, or the reason it did not run."""

    name: str
    runs: list[wrk.WrkResult] = field(default_factory=list)
    problem: str | None = None

    @property
    def rps(self) -> float:
        return statistics.median(r.requests_per_second for r in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


@dataclass(frozen=True)
class Verdict:
    comparison: Comparison
    ratio: float | None
    status: str  # PASS, MISS, "context" (no target), or why there is no ratio


# What `run_all` found: the outcome of each scenario, and the profile of each missed target's
# subject (by the target's title).
Profiles = dict[str, list[str]]


def run_all(
    names: Sequence[str], durations: Durations, workdir: Path
) -> tuple[dict[str, Outcome], Profiles]:
    """Start every server, run the rounds, then profile the subject of each missed target
    while the servers are still up."""
    outcomes = {name: Outcome(name) for name in names}
    with ExitStack() as servers:
        targets: dict[str, wrk.Target] = {}
        for name in names:
            print(f"starting {name} …", flush=True)
            try:
                targets[name] = servers.enter_context(SCENARIOS[name](workdir))
            except Skipped as exc:
                outcomes[name].problem = f"skipped: {exc}"
                print(f"  {outcomes[name].problem}", flush=True)
            except ServerFailed as exc:
                outcomes[name].problem = one_line(str(exc))
                print(f"  {exc}", flush=True)
        for target in targets.values():
            wrk.run(target, durations.warmup_s, CONNECTIONS, WRK_THREADS)
        for round_number in range(1, durations.rounds + 1):
            # every other round in reverse: no server always runs right after another
            turn = list(targets.items())[:: 1 if round_number % 2 else -1]
            for name, target in turn:
                result = wrk.run(target, durations.measure_s, CONNECTIONS, WRK_THREADS)
                outcomes[name].runs.append(result)
                print(f"round {round_number} {name}: {format_run(result)}", flush=True)
        return outcomes, profile_misses(outcomes, targets, durations.measure_s)


def profile_misses(
    outcomes: dict[str, Outcome], targets: dict[str, wrk.Target], seconds: float
) -> Profiles:
    profiles: Profiles = {}
    for comparison in TARGETS:
        subject = targets.get(comparison.subject)
        pid = serving_pid(subject.url) if subject is not None else None
        if subject is None or pid is None or judge(comparison, outcomes).status != "MISS":
            continue
        print(f"profiling {comparison.subject} (missed: {comparison.title}) …", flush=True)
        split = {comparison.subject: (pid, subject)}
        baseline = targets.get(comparison.baseline)
        baseline_pid = serving_pid(baseline.url) if baseline is not None else None
        if baseline is not None and baseline_pid is not None:
            split[comparison.baseline] = (baseline_pid, baseline)
        profiles[comparison.title] = [
            *cpu_split(split, seconds),
            "py-spy: share of on-CPU samples, top functions of the subject:",
            *server_profile(pid, subject, seconds),
        ]
    return profiles


def one_line(message: str) -> str:
    """First and last line of a failure (what failed, and the error it ended with)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"


def format_run(result: wrk.WrkResult) -> str:
    rate, p99 = result.requests_per_second, result.p99_ms
    return f"{rate:,.0f} req/s, p99 {p99:.2f} ms, errors {result.errors}"


def judge(comparison: Comparison, outcomes: dict[str, Outcome]) -> Verdict:
    """Median over rounds of the per-round ratio; no verdict on a side that failed."""
    for name in (comparison.subject, comparison.baseline):
        side = outcomes.get(name)
        if side is None:
            return Verdict(comparison, None, f"not run ({name})")
        if side.problem is not None:
            return Verdict(comparison, None, f"{name} {side.problem}")
        if side.errors:
            return Verdict(comparison, None, f"{name} gave {side.errors} unexpected answers")
    subject, baseline = outcomes[comparison.subject], outcomes[comparison.baseline]
    ratio = statistics.median(
        s.requests_per_second / b.requests_per_second
        for s, b in zip(subject.runs, baseline.runs, strict=True)
    )
    if comparison.target is None:
        return Verdict(comparison, ratio, "context")
    passed = ratio >= comparison.target
    if comparison.lower_p99:
        passed = passed and subject.p99_ms < baseline.p99_ms
    return Verdict(comparison, ratio, "PASS" if passed else "MISS")


def print_summary(outcomes: dict[str, Outcome], verdicts: Sequence[Verdict]) -> None:
    print(f"\n{'scenario':<30}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for o in outcomes.values():
        if o.problem is not None:
            print(f"{o.name:<30}  {o.problem}")
        else:
            print(f"{o.name:<30}{o.rps:>10,.0f}{o.p50_ms:>9.2f}{o.p99_ms:>9.2f}{o.errors:>8}")
    print()
    for v in verdicts:
        ratio = "—" if v.ratio is None else f"{v.ratio:.2f}"
        target = "" if v.comparison.target is None else f"≥ {v.comparison.target:g}"
        print(f"{v.comparison.title:<62}{ratio:>7}  {target:<6}  {v.status}")


# Measured in process, not over HTTP: each writes its figures as JSON for the report.
IN_PROCESS = ("inprocess", "instructions", "scale")
SCALE_KEYS = 1_000_000
TIMEOUT_S = 1800  # a million keys into two databases, on a loaded machine
QUICK_ARGS = {
    "inprocess": ["--rounds", "1", "--calls", "5000"],
    "instructions": ["--calls", "500"],
    "scale": ["--keys", "20000"],
}


def run_in_process(names: Sequence[str], quick: bool, scale_keys: int, workdir: Path) -> Extras:
    """Run each in-process benchmark in its own interpreter; its figures, or why it failed."""
    figures: Extras = {}
    for name in names:
        print(f"running bench.{name} …", flush=True)
        out = workdir / f"{name}.json"
        extra = QUICK_ARGS[name] if quick else []
        if name == "scale" and not quick:
            extra = ["--keys", str(scale_keys)]
        argv = [sys.executable, "-m", f"bench.{name}", "--json", str(out), *extra]
        try:
            done = subprocess.run(argv, cwd=REPO, env=bench_env(), timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            figures[name] = f"timed out after {TIMEOUT_S} s"
            continue
        if done.returncode != 0 or not out.exists():
            figures[name] = f"failed with exit code {done.returncode}"
            continue
        figures[name] = json.loads(out.read_text())
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke test")
    parser.add_argument(
        "--only",
        action="append",
        choices=[*SCENARIOS, *IN_PROCESS],
        metavar="NAME",
        help=f"run only this (repeatable): {', '.join([*SCENARIOS, *IN_PROCESS])}",
    )
    parser.add_argument(
        "--scale-keys",
        type=int,
        default=SCALE_KEYS,
        help=f"keys per database in bench.scale (default {SCALE_KEYS:,})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="report file (default: docs/benchmarks.md for a full run, "
        "bench/out/benchmarks.md for --quick or --only)",
    )
    args = parser.parse_args(argv)
    durations = QUICK if args.quick else FULL
    chosen = args.only or [*SCENARIOS, *IN_PROCESS]
    names = [name for name in chosen if name in SCENARIOS]
    partial = args.quick or args.only is not None
    out = args.out or REPO / ("bench/out/benchmarks.md" if partial else "docs/benchmarks.md")

    with tempfile.TemporaryDirectory(prefix="llavero-bench-") as tmp:
        outcomes, profiles = run_all(names, durations, Path(tmp)) if names else ({}, {})
        extras = run_in_process(
            [name for name in chosen if name in IN_PROCESS], args.quick, args.scale_keys, Path(tmp)
        )
    verdicts = [judge(c, outcomes) for c in COMPARISONS if {c.subject, c.baseline} <= set(names)]
    targets = target_rows([judge(c, outcomes) for c in TARGETS], extras, profiles)
    print_summary(outcomes, verdicts)
    print_extras(extras)
    given = sys.argv[1:] if argv is None else argv
    write_report(out, outcomes, verdicts, targets, extras, durations, given)
    print(f"\nreport written to {out}")
    print_targets(targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
