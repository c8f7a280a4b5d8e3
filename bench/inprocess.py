"""In-process verify against the least any verify must do: a keyed hash and a dict lookup.

`python -m bench.inprocess [--rounds 7] [--calls 50000] [--keys 100] [--json FILE]`
(run from the repository root).

*verify* is `Verifier.verify`, the function the HTTP fast path, the route, forward auth and the
gateway all call, as `llavero serve` runs it: metering on (the flusher thread writing to SQLite),
the memory limiter judging the plan's four limits (set out of reach, so every answer is VALID),
and every key restricted to an IP range and one API, so restrictions are checked on each call.
Records are cached, as they are for every verify but a key's first.

*floor* is `KeyHasher.hash` of the same key strings plus `dict.get` in a dict of as many
entries: the two steps no verify can skip. Each round times both, alternating which goes first;
the figure is the median over rounds of verify / floor. Target: at most 3.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.scenarios import ROOMY_PLANS
from llavero.config import Settings
from llavero.service import Actor, Llavero
from llavero.verify import VerifyRequest

TARGET = 3.0
RESTRICTIONS = {
    "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
    "api_targets": [{"service": "generativelanguage.googleapis.com"}],
}


def seconds_per_call(call: Callable[[int], object], calls: int) -> float:
    started = time.perf_counter()
    for index in range(calls):
        call(index)
    return (time.perf_counter() - started) / calls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50_000, help="per side and round")
    parser.add_argument("--keys", type=int, default=100, help="keys verified in turn")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="llavero-inprocess-") as scratch:
        plans = Path(scratch) / "plans.toml"
        plans.write_text(ROOMY_PLANS)
        settings = Settings(
            data_dir=Path(scratch),
            secret_key="bench-inprocess-secret-0123456789",
            change_poll_seconds=0,
            plans_file=plans,
        )
        llavero = Llavero(settings)
        llavero.upgrade()
        system = Actor.system("bench")
        project = llavero.projects.create(system, "Bench", "bench-inprocess")
        key_strings = [
            llavero.keys.create(system, project.id, restrictions=RESTRICTIONS).key_string
            for _ in range(args.keys)
        ]
        requests = [
            VerifyRequest(key, ip="203.0.113.7", service="generativelanguage.googleapis.com")
            for key in key_strings
        ]
        llavero.usage_meter.start()

        verify, size = llavero.verifier.verify, len(requests)
        digest = llavero.ctx.hasher.hash
        table = {digest(key): index for index, key in enumerate(key_strings)}

        def one_verify(index: int) -> object:
            return verify(requests[index % size])

        def floor(index: int) -> object:
            return table.get(digest(key_strings[index % size]))

        for request in requests:  # cache every record; check that the setup verifies VALID
            if (code := verify(request).code) != "VALID":
                raise SystemExit(f"a bench verify answered {code}: the figures mean nothing")
        ratios, verify_us, floor_us = [], [], []
        for round_number in range(args.rounds):
            sides = (one_verify, floor) if round_number % 2 == 0 else (floor, one_verify)
            timed = {side: seconds_per_call(side, args.calls) for side in sides}
            verify_us.append(timed[one_verify] * 1e6)
            floor_us.append(timed[floor] * 1e6)
            ratios.append(timed[one_verify] / timed[floor])
            print(
                f"round {round_number + 1}: verify {verify_us[-1]:.2f} µs, "
                f"floor {floor_us[-1]:.2f} µs, ratio {ratios[-1]:.2f}",
                flush=True,
            )
        llavero.close()
        llavero.db.dispose()

    figures = {
        "verify_us": statistics.median(verify_us),
        "floor_us": statistics.median(floor_us),
        "ratio": statistics.median(ratios),
        "target": TARGET,
    }
    print(
        f"\nverify {figures['verify_us']:.2f} µs/call, keyed hash + dict lookup "
        f"{figures['floor_us']:.2f} µs/call: ratio {figures['ratio']:.2f} "
        f"(median of {args.rounds} rounds; target ≤ {TARGET:g})"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
