"""Instructions per verify, counted by callgrind: figures that do not drift with the machine.

`python -m bench.instructions [--calls 4000] [--json FILE]` (run from the repository root;
needs valgrind: `apt-get install -y valgrind`).

The wall-clock figures of `bench.run` and `bench.inprocess` move with whatever else the shared
machine runs: one `make bench` run's rounds spread ±0.1 around their median, and the same code
measured 0.57 and 0.71 of the bare app on two days. Valgrind's callgrind counts the
instructions a process executes instead, the same for the same code and inputs whatever else
runs, so it tells whether a change made Llavero's own work smaller (bench/notes.md, item 14).

Each scenario runs in its own interpreter under `valgrind --tool=callgrind
--instr-atstart=no`; the child switches counting on (`callgrind_control -i on`) only around its
loop, once for `--calls` calls and once for three times as many, and a figure is the difference
divided by the extra calls, so start-up, set-up and the switching cancel out:

- *http*: `POST /v1/keys:verify` handed to the ASGI app `llavero serve` runs (`create_app`: the
  fast path, its access line written to /dev/null by the writer thread), no server, the
  `database` limiter as shipped, an unrestricted key, every answer `VALID`;
- *bare*: the same loop and messages handed to the bare ASGI app of `bench.run`
  (`bench.peers.bare_asgi`): what the loop itself costs, so *http − bare* is Llavero's own part;
- *verify* and *floor*: `Verifier.verify` and the keyed hash + dict lookup, set up as
  `bench.inprocess` sets them up (memory limiter, restricted keys).

Instructions are not time (a cache miss costs more than an addition), and the server's own
threads are not here: the ratios of `bench.run` stay the claim; these tell where they move.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from bench.inprocess import VALID_ANSWER, asgi_verifies, restricted_keys
from bench.peers import bare_asgi
from bench.scenarios import ROOMY_PLANS
from bench.servers import REPO, bench_env

SCENARIOS = ("http", "bare", "verify", "floor")
KEYS = 10  # verified in turn


def http_calls(scratch: Path, bare: bool) -> Callable[[int], None]:
    """`count` HTTP verifies of llavero serve's app as shipped (or of the bare app)."""
    from llavero.application import create_app
    from llavero.config import Settings
    from llavero.edges.access_log import AccessLogWriter
    from llavero.service import Actor, Llavero

    plans = scratch / "plans.toml"
    plans.write_text(ROOMY_PLANS)
    settings = Settings(
        data_dir=scratch,
        secret_key="bench-instructions-secret-0123456789",
        change_poll_seconds=0,
        plans_file=plans,
    )
    llavero = Llavero(settings)
    llavero.upgrade()
    system = Actor.system("bench")
    project = llavero.projects.create(system, "Bench", "bench-instructions")
    key = llavero.keys.create(system, project.id).key_string
    token = llavero.tokens.create(system, ["keys:verify"]).token
    body = json.dumps({"key": key, "ip": "203.0.113.7"}).encode()
    devnull = open(os.devnull, "wb")  # noqa: SIM115  # lives as long as this child process
    app = create_app(llavero, access_log=AccessLogWriter(devnull))
    verifies, answers = asgi_verifies(bare_asgi.app if bare else app, token, body)
    loop = asyncio.new_event_loop()

    def run(count: int) -> None:
        loop.run_until_complete(verifies(count))
        if set(answers) != {VALID_ANSWER}:
            raise SystemExit(f"bench HTTP verifies answered (status, valid) {sorted(answers)}")

    return run


def inprocess_calls(scratch: Path, floor: bool) -> Callable[[int], None]:
    """`count` verifies as `bench.inprocess` times them (or its floor)."""
    from llavero.core.verify import VerifyRequest

    llavero, keys = restricted_keys(scratch, KEYS)
    service = "generativelanguage.googleapis.com"
    requests = [VerifyRequest(key, ip="203.0.113.7", service=service) for key in keys]
    verify, digest = llavero.verifier.verify, llavero.ctx.hasher.hash
    table = {digest(key): index for index, key in enumerate(keys)}
    if any(verify(request).code != "VALID" for request in requests):
        raise SystemExit("a bench verify was not VALID: the figures would mean nothing")

    def run(count: int) -> None:
        if floor:
            for index in range(count):
                table.get(digest(keys[index % KEYS]))
        else:
            for index in range(count):
                verify(requests[index % KEYS])

    return run


def child(scenario: str, calls: int) -> None:
    """Under callgrind: set up, warm up, then count `calls` calls and nothing else."""
    with tempfile.TemporaryDirectory(prefix="llavero-instructions-") as scratch:
        if scenario in ("http", "bare"):
            run = http_calls(Path(scratch), bare=scenario == "bare")
        else:
            run = inprocess_calls(Path(scratch), floor=scenario == "floor")
        run(200)  # caches, the token's first authentication, lazily built state
        counting(True)
        run(calls)
        counting(False)


def counting(on: bool) -> None:
    """Switch callgrind's instrumentation of this process on or off; it returns once done."""
    argv = ["callgrind_control", "--instr=" + ("on" if on else "off"), str(os.getpid())]
    subprocess.run(argv, check=True, capture_output=True)


def instructions(scenario: str, calls: int, workdir: Path) -> Path:
    """Run `scenario` for `calls` calls under callgrind: its output file."""
    out = workdir / f"{scenario}-{calls}.callgrind"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}", sys.executable, "-m", "bench.instructions",
            "--child", scenario, str(calls)]  # fmt: skip
    env = bench_env({"PYTHONHASHSEED": "0"})  # the same dict layouts every run
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{scenario} under callgrind failed:\n{done.stderr[-2000:]}")
    return out


def totals(callgrind_out: str) -> int:
    """The `totals:` line of a callgrind output file: every instruction counted."""
    for line in callgrind_out.splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError("no totals line in the callgrind output")


def inclusive(callgrind_out: Path) -> dict[str, int]:
    """Each function's instructions with those of what it called, by name."""
    argv = ["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no",
            str(callgrind_out)]  # fmt: skip
    return function_counts(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def function_counts(annotated: str) -> dict[str, int]:
    """The counts of `callgrind_annotate`'s function table (`12,345 (5.1%)  file:fn [lib]`).
    It shows a compiled function under each path its debug information gives (`/work/…/x.c`,
    `x.c`, inlined headers), and those counts overlap: the largest is the function's."""
    counts: dict[str, int] = {}
    for line in annotated.splitlines():
        count, _, rest = line.strip().partition(" ")
        if not count[:1].isdigit() or ") " not in rest:
            continue
        name = rest.split(") ", 1)[1].strip().split(" [")[0].rsplit(":", 1)[-1]
        counts[name] = max(counts.get(name, 0), int(count.replace(",", "")))
    return counts


def per_call(scenario: str, calls: int, workdir: Path) -> tuple[float, dict[str, float]]:
    """Instructions a call: in all, and of each function in `PARTS` (the calls of a short and
    a long run apart, so start-up and set-up cancel out)."""
    short, long = instructions(scenario, calls, workdir), instructions(scenario, 3 * calls, workdir)
    total = (totals(long.read_text()) - totals(short.read_text())) / (2 * calls)
    if scenario not in PARTS:
        return total, {}
    before, after = inclusive(short), inclusive(long)
    names = {name for _, names in PARTS[scenario] for name in names}
    return total, {name: (after.get(name, 0) - before.get(name, 0)) / (2 * calls) for name in names}


# Where the instructions of an HTTP verify and of `Verifier.verify` go: the compiled functions
# (mypyc's C names; none with LLAVERO_PURE_PYTHON=1) and C functions whose counts callgrind
# gives with what they call. An indented row is within the row above it.
FAST_PATH: Final = "CPyDef_fast_verify_____call___3_VerifyFastPath_gen_____mypyc_generator_helper__"
THREADS: Final = "thread_run"  # _thread's start of a thread: those started while counting
METER: Final = "CPyDef_meter___Tally___record"
CACHED: Final = (
    "  keyed hash + cache lookup (`Verifier.cached`)",
    ("CPyDef_verify___Verifier___cached",),
)
PARTS: Final[dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "http": (
        ("`VerifyFastPath.__call__`, its awaits of the server's messages too", (FAST_PATH,)),
        ("  reading the body (`read_body`)",
         ("CPyDef_fast_verify___read_body_gen_____mypyc_generator_helper__",)),
        ("  headers, service token, body, cache (`_fast_request`)",
         ("CPyDef_fast_verify___VerifyFastPath____fast_request",)),
        ("    body to request (`plain_request`)", ("CPyDef_fast_verify___plain_request",)),
        (f"  {CACHED[0]}", CACHED[1]),
        ("  restrictions, limits, meter (`Verifier.verify_now`)",
         ("CPyDef_verify___Verifier___verify_now",)),
        ("    held slices spent (`leases.spend`)", ("CPyDef_leases___spend",)),
        ("    usage meter (`Tally.record`)", (METER,)),
        ("  the answer as JSON (`VerifyResult.to_dict`, `orjson.dumps`)",
         ("CPyDef_verify___VerifyResult___to_dict", "dumps")),
        ("threads callgrind saw start (e.g. a claim's worker thread)", (THREADS,)),
    ),
    "verify": (
        ("`Verifier.verify`", ("CPyDef_verify___Verifier___verify",)),
        CACHED,
        ("  state, environment and restrictions (`Verifier.refusal`)",
         ("CPyDef_verify___Verifier___refusal",)),
        ("  limiter: judge and count 4 limits (`MemoryLimiter.hit`)",
         ("CPyDef_limits___MemoryLimiter___hit",)),
        ("    the verdict and 4 limit statuses (`limits._decide`)", ("CPyDef_limits____decide",)),
        ("  result and usage meter (`Verifier._answer`)", ("CPyDef_verify___Verifier____answer",)),
        ("    usage meter (`Tally.record`)", (METER,)),
    ),
}  # fmt: skip
# The access log's writer and the usage flusher start before counting does: callgrind gives
# their `thread_run` no total, so their work is in the rest.
HTTP_REST = (
    "the rest: the event loop, the scopes and messages (the bare app pays them too), "
    "the access log's writer thread"
)


def parts(scenario: str, total: float, functions: dict[str, float]) -> dict[str, float]:
    """The rows of `PARTS[scenario]` with their counts a call; for an HTTP verify, also what
    the unindented rows leave of the whole."""
    rows = {label: sum(functions[name] for name in names) for label, names in PARTS[scenario]}
    if scenario == "http":
        rows[HTTP_REST] = total - sum(n for label, n in rows.items() if not label.startswith(" "))
    return rows


def figures(measured: dict[str, tuple[float, dict[str, float]]]) -> dict[str, Any]:
    """The counts per call, what they mean together, and where they go (`parts`)."""
    counts = {name: total for name, (total, _) in measured.items()}
    return {
        **counts,
        "llavero_http": counts["http"] - counts["bare"],
        "http_over_bare": counts["http"] / counts["bare"],
        "verify_over_floor": counts["verify"] / counts["floor"],
        "parts": {name: parts(name, *measured[name]) for name in PARTS},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="the shorter run's calls")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (apt-get install -y valgrind)")
    with tempfile.TemporaryDirectory(prefix="llavero-callgrind-") as workdir:
        measured = {name: per_call(name, args.calls, Path(workdir)) for name in SCENARIOS}
    result = figures(measured)
    for name in SCENARIOS:
        print(f"{name:>8}: {result[name]:>10,.0f} instructions a call")
    for name, rows in result["parts"].items():
        print(f"\nwhere the instructions of a call go ({name}):")
        print(*(f"{count:>10,.0f}  {label}" for label, count in rows.items()), sep="\n")
    print(
        f"Llavero's own part of an HTTP verify: {result['llavero_http']:,.0f} instructions "
        f"(http / bare {result['http_over_bare']:.2f}); verify / floor "
        f"{result['verify_over_floor']:.2f}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
