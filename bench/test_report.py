"""Run with `pytest bench/test_report.py`: the harness from figures to verdicts, profiles and the
written report, on made-up wrk results (no server, no wrk, no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import instructions, profile, report, run, wrk


def outcome(name: str, *rates: float) -> run.Outcome:
    runs = [
        wrk.WrkResult(rate, int(rate), {50: 1.0, 75: 1.5, 90: 2.0, 99: 3.0}, 0) for rate in rates
    ]
    return run.Outcome(name, runs)


OUTCOMES = {
    "bare_asgi_granian": outcome("bare_asgi_granian", 100, 100, 100),
    "llavero_verify": outcome("llavero_verify", 80, 70, 90),
    "llavero_verify_no_access_log": outcome("llavero_verify_no_access_log", 80, 80, 80),
    "llavero_verify_memory": outcome("llavero_verify_memory", 100, 100, 100),
    "llavero_verify_redis": run.Outcome("llavero_verify_redis", problem="skipped: no Redis"),
}
INPROCESS = {"ratio": 4.0, "verify_us": 2.8, "floor_us": 0.7, "steps_us": {"limiter": 1.4}}
FUNCTIONS = {name: 1_000.0 for parts in instructions.PARTS.values() for _, names in parts
             for name in names}  # fmt: skip
MEASURED = {"http": (100_000.0, FUNCTIONS), "bare": (12_500.0, {}), "verify": (30_000.0, FUNCTIONS),
            "floor": (7_500.0, {})}  # fmt: skip
INSTRUCTIONS = instructions.figures(MEASURED)
SCALE = [
    {"database": "SQLite", "keys": 1_000_000, "bulk_create_keys_per_s": 1.0,
     "list_all_projects_ms": 1.0, "list_one_project_ms": 1.0, "uncached_verify_p50_ms": 1.0,
     "uncached_verify_p99_ms": 2.0, "cached_key_bytes": 400.0, "cache_profile": ["96 bytes"]},
]  # fmt: skip


def rows() -> list[report.TargetRow]:
    verdicts = [run.judge(c, OUTCOMES) for c in run.TARGETS]
    profiles = {run.TARGETS[0].title: ["12.0 %  DatabaseLimiter._consume"]}
    extras = {"inprocess": INPROCESS, "scale": SCALE, "instructions": INSTRUCTIONS}
    return report.target_rows(verdicts, extras, profiles)


def test_every_target_of_the_issue_has_a_verdict() -> None:
    by_title = {row.title.split(" (")[0]: (row.measured, row.status) for row in rows()}
    assert by_title == {
        "verify as shipped / bare ASGI app reading the body": ("0.80", "PASS"),
        "access log: verify as shipped / the same without it": ("1.00", "PASS"),
        "Redis limiter / memory limiter": ("—", "llavero_verify_redis skipped: no Redis"),
        "in-process cached verify / keyed hash + dict lookup": ("4.00", "MISS"),
        "bytes per cached key": ("400", "PASS"),
    }


def test_a_miss_prints_its_profile(capsys: pytest.CaptureFixture[str]) -> None:
    report.print_targets(rows())
    printed = capsys.readouterr().out
    assert "1.40 µs  limiter" in printed  # the in-process MISS: its steps' times
    assert "   30,000  `Verifier.verify`" not in printed  # its parts, by function:
    assert "    1,000  `Verifier.verify`" in printed
    assert "    7,500  the floor: keyed hash + dict lookup" in printed
    assert "DatabaseLimiter" not in printed  # a PASS prints no profile, nor the HTTP parts
    assert "VerifyFastPath" not in printed


def test_the_report_has_the_targets_and_keeps_sections_it_does_not_write(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## Gateway\n\nkept figures\n\n## Targets\n\nstale\n")
    verdicts = [run.judge(c, OUTCOMES) for c in run.COMPARISONS if c.subject in OUTCOMES]
    extras = {"inprocess": INPROCESS, "scale": SCALE, "instructions": INSTRUCTIONS}
    report.write_report(out, OUTCOMES, verdicts, rows(), extras, run.QUICK, ["--quick"])
    text = out.read_text()
    assert "| Llavero's own part of an HTTP verify (the two above apart) | 87,500 |" in text
    assert "| HTTP verify / bare app, in process | 8.00 × |" in text
    assert "| verify / floor | 4.00 × |" in text
    assert "| in-process cached verify / keyed hash + dict lookup | 4.00 | ≤ 3 | MISS |" in text
    assert "```text\n     1.40 µs  limiter\n" in text
    assert f"   98,000  {instructions.HTTP_REST}" in text  # 100,000 less the fast path, threads
    assert "kept figures" in text and "stale" not in text


def test_py_spy_leaves_add_up_by_function_and_leave_idle_threads_out() -> None:
    raw = (
        'process 1:"llavero serve";main (a.py:1);hit (llavero/limits.py:10) 3\n'
        'process 1:"llavero serve";main (a.py:1);hit (llavero/limits.py:12) 1\n'
        "main (a.py:1);Condition.wait (threading.py:320) 6\n"
    )
    assert profile.top_functions(raw) == [
        "100.0 %  hit (llavero/limits.py)",
        "(left out: 6 samples of idle pool threads waiting, of 10)",
    ]
