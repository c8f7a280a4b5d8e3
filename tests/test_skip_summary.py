"""Without PostgreSQL or Redis the run says so once per service, not once per skipped test:
run in one process, and on pytest-xdist workers as `make test` runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_missing_service_is_one_summary_line(workers: str) -> None:
    env = {
        **os.environ,
        "CI": "",
        "LLAVERO_TEST_POSTGRES_URL": "postgresql+psycopg://postgres@127.0.0.1:9/test",
        "LLAVERO_TEST_REDIS_URL": "redis://127.0.0.1:9/0",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-n",
            workers,
            "tests/core/test_verify.py",
            "tests/integration/test_limits_redis.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 2, "\n".join(skipped[:10])
    postgres, redis = sorted(skipped, key=lambda line: "Redis at" in line)  # not by the counts
    assert re.match(
        r"SKIPPED \[\d+\] tests/conftest.py:\d+: PostgreSQL at .* not available$", postgres
    )
    assert re.match(r"SKIPPED \[\d+\] tests/conftest.py:\d+: Redis at .* not available$", redis)
