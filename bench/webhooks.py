"""Verify throughput with and without a webhook subscribed to `quota.threshold`.

`python -m bench.webhooks [--rounds 30] [--calls 10000] [--json FILE]` (from the repository root,
with the project's venv: it needs nothing from bench/requirements.txt).

Three services, each on its own SQLite file and running every background job `llavero serve`
runs (usage flusher, alert check and event delivery, each every second): `plain`, `control`
(the same again: the noise floor of the machine) and `subscribed`, with a webhook for
`quota.threshold` that posts to a receiver on loopback. The
project's `rpd` is set so that the 80 % threshold is crossed during the run (and 100 % is not),
so the subscribed service really detects, queues, signs and sends an event while it verifies.
Each round times `--calls` cached verifies on each, rotating which goes first; the figure is the
median over rounds of subscribed / plain verifies per second (and control / plain beside it).
Target: at least 0.97, since thresholds are read from the flushed counters and verify itself
does no extra work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from llavero.config import Settings
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from tests.webhook_receiver import Receiver, receiver

TARGET = 0.97


def service(workdir: Path, name: str, rpd: int) -> Llavero:
    plans = workdir / f"{name}.toml"
    plans.write_text(f'[plans.free]\ndisplay_name = "Free"\nrpm = 10_000_000_000\nrpd = {rpd}\n')
    settings = Settings(
        data_dir=workdir / name,
        database_url=f"sqlite:///{workdir / name}.sqlite3",
        secret_key="bench-secret-0123456789abcdef",
        plans_file=plans,
        change_poll_seconds=0,
        usage_flush_seconds=1.0,
        alert_check_seconds=1.0,
        webhook_poll_seconds=1.0,
    )
    llavero = Llavero(settings)
    llavero.upgrade()
    return llavero


def keyed(llavero: Llavero, hook: Receiver | None) -> VerifyRequest:
    system = Actor.system("bench")
    project = llavero.projects.create(system, "Bench").id
    if hook is not None:
        created = llavero.webhooks.create(system, hook.url, ["quota.threshold"], project=project)
        hook.secrets.append(created.secret)
    key = llavero.keys.create(system, project).key_string
    request = VerifyRequest(key=key)
    assert llavero.verifier.verify(request).code == "VALID"
    return request


def per_second(llavero: Llavero, request: VerifyRequest, calls: int) -> float:
    verify = llavero.verifier.verify
    started = time.perf_counter()
    for _ in range(calls):
        verify(request)
    return calls / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args(argv)
    total = options.rounds * options.calls + 1
    rpd = int(total * 1.2)  # 80 % falls two thirds into the run, 100 % never
    with tempfile.TemporaryDirectory() as tmp, receiver() as hook:
        workdir = Path(tmp)
        names = ("plain", "control", "subscribed")
        services = {name: service(workdir, name, rpd) for name in names}
        try:
            requests = {
                name: keyed(llavero, hook if name == "subscribed" else None)
                for name, llavero in services.items()
            }
            for llavero in services.values():
                llavero.start()
            rates: dict[str, list[float]] = {name: [] for name in names}
            for round_index in range(options.rounds):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    rate = per_second(services[name], requests[name], options.calls)
                    rates[name].append(rate)
            time.sleep(3.0)  # the last flush, check and delivery
        finally:
            for llavero in services.values():
                llavero.close()

    def ratio(name: str) -> float:
        return statistics.median(a / b for a, b in zip(rates[name], rates["plain"], strict=True))

    result = {
        "rounds": options.rounds,
        "calls": options.calls,
        "per_second": {name: round(statistics.median(rates[name])) for name in names},
        "ratio": ratio("subscribed"),
        "control_ratio": ratio("control"),
        "events_delivered": hook.types(),
        "target": TARGET,
    }
    print(json.dumps(result, indent=2))
    if options.json is not None:
        options.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["events_delivered"] == ["quota.threshold"] else 1


if __name__ == "__main__":
    sys.exit(main())
