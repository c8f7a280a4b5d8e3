"""How long a failed sign-in takes for a real email and for an unknown one.

`python -m bench.signin [--calls 20]` (run from the repository root).

Each call is `Users.authenticate` with a wrong password, from its own client address (so the
throttle never refuses before the password is checked), on a SQLite file in a temporary
directory. Both medians should be about one Argon2id verify (docs/security.md, "Account
enumeration and throttling"); before the fix an unknown email answered in 3 ms and a real one
in ~105 ms. The pass/fail guarantee is the counted work in
`tests/security/test_signin_enumeration.py`, not these times.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from llavero.config import Settings
from llavero.errors import Unauthenticated
from llavero.service import Actor, Llavero


def median_ms(llavero: Llavero, email: str, calls: int, first_ip: int) -> float:
    times = []
    for index in range(calls):
        ip = f"198.51.{(first_ip + index) // 250}.{(first_ip + index) % 250 + 1}"
        start = time.perf_counter()
        with contextlib.suppress(Unauthenticated):
            llavero.users.authenticate(email, "wrong password", ip)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(data_dir=Path(directory), secret_key="bench-secret-0123456789")
        llavero = Llavero(settings)
        llavero.upgrade()
        llavero.users.create(Actor.system("bench"), "ana@example.com", "correct horse battery")
        median_ms(llavero, "warm@example.com", 2, 0)  # the unknown-user hash is made once
        real = median_ms(llavero, "ana@example.com", args.calls, 10)
        unknown = median_ms(llavero, "nobody@example.com", args.calls, 10 + args.calls)
        llavero.close()
    print(f"failed sign-in, real email:    {real:7.1f} ms (median of {args.calls})")
    print(f"failed sign-in, unknown email: {unknown:7.1f} ms (median of {args.calls})")
    print(f"ratio unknown / real: {unknown / real:.2f}")


if __name__ == "__main__":
    main()
