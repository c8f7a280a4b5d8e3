"""Entry point: `python -m bench.run [--quick] [--only NAME ...]` (run from the repository root).

All servers start first and stay up; then each round loads every server in turn with wrk.
Ratios are taken within a round and the median over rounds is reported, so the drift of a
shared, noisy machine hits both sides of every ratio alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import wrk
from bench.report import write_report
from bench.scenarios import SCENARIOS, Skipped
from bench.servers import REPO, ServerFailed

CONNECTIONS = 32
WRK_THREADS = 1


@dataclass(frozen=True)
class Durations:
    warmup_s: float
    measure_s: float
    rounds: int


FULL = Durations(warmup_s=3, measure_s=5, rounds=5)
QUICK = Durations(warmup_s=1, measure_s=2, rounds=1)


@dataclass(frozen=True)
class Comparison:
    """Throughput of `subject` divided by that of `baseline`, and the ratio it must reach.

    Without a target the ratio is context: how much the server or the framework alone allows.
    """

    title: str
    subject: str
    baseline: str
    target: float | None = None


LLAVERO = "llavero_verify_http"
COMPARISONS = (
    Comparison("verify / bare endpoint (uvicorn)", LLAVERO, "bare_uvicorn", 0.75),
    Comparison("verify / bare endpoint (granian)", "llavero_verify_granian", "bare_granian", 0.75),
    Comparison("verify / DRF + djangorestframework-api-key", LLAVERO, "drf_api_key", 25),
    Comparison("verify / fastapi-keygate", LLAVERO, "fastapi_keygate", 25),
    Comparison("verify / FastAPI + SQLAlchemy lookup", LLAVERO, "plain_sqlalchemy", 25),
    Comparison("ceiling: bare (uvicorn) / DRF + api-key", "bare_uvicorn", "drf_api_key"),
    Comparison("ceiling: bare (uvicorn) / fastapi-keygate", "bare_uvicorn", "fastapi_keygate"),
    Comparison("ceiling: bare (uvicorn) / SQLAlchemy lookup", "bare_uvicorn", "plain_sqlalchemy"),
    Comparison("server: bare (granian) / bare (uvicorn)", "bare_granian", "bare_uvicorn"),
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


def run_all(names: Sequence[str], durations: Durations, workdir: Path) -> dict[str, Outcome]:
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
            for name, target in targets.items():
                result = wrk.run(target, durations.measure_s, CONNECTIONS, WRK_THREADS)
                outcomes[name].runs.append(result)
                print(f"round {round_number} {name}: {format_run(result)}", flush=True)
    return outcomes


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
    return Verdict(comparison, ratio, "PASS" if ratio >= comparison.target else "MISS")


def print_summary(outcomes: dict[str, Outcome], verdicts: Sequence[Verdict]) -> None:
    print(f"\n{'scenario':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for o in outcomes.values():
        if o.problem is not None:
            print(f"{o.name:<22}  {o.problem}")
        else:
            print(f"{o.name:<22}{o.rps:>10,.0f}{o.p50_ms:>9.2f}{o.p99_ms:>9.2f}{o.errors:>8}")
    print()
    for v in verdicts:
        ratio = "—" if v.ratio is None else f"{v.ratio:.2f}"
        target = "" if v.comparison.target is None else f"≥ {v.comparison.target:g}"
        print(f"{v.comparison.title:<50}{ratio:>7}  {target:<6}  {v.status}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke test")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="report file (default: docs/benchmarks.md for a full run, "
        "bench/out/benchmarks.md for --quick or --only)",
    )
    args = parser.parse_args(argv)
    durations = QUICK if args.quick else FULL
    names = args.only or list(SCENARIOS)
    partial = args.quick or args.only is not None
    out = args.out or REPO / ("bench/out/benchmarks.md" if partial else "docs/benchmarks.md")

    with tempfile.TemporaryDirectory(prefix="llavero-bench-") as tmp:
        outcomes = run_all(names, durations, Path(tmp))
    verdicts = [judge(c, outcomes) for c in COMPARISONS]
    print_summary(outcomes, verdicts)
    write_report(out, outcomes, verdicts, durations, sys.argv[1:] if argv is None else argv)
    print(f"\nreport written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
