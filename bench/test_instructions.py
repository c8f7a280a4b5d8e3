"""The instruction counts: read from callgrind's output, and one real count under valgrind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import instructions


def test_the_count_is_the_totals_line_of_callgrinds_output() -> None:
    out = "version: 1\nevents: Ir\nsummary: 0\nfn=(1) main\n0 12\ntotals: 69197527\n"
    assert instructions.totals(out) == 69_197_527
    with pytest.raises(ValueError, match="no totals"):
        instructions.totals("events: Ir\n")


@pytest.mark.skipif(shutil.which("callgrind_control") is None, reason="valgrind not installed")
def test_a_keyed_hash_and_a_lookup_count_the_same_each_call(tmp_path: Path) -> None:
    """The floor under callgrind at two lengths: start-up cancels out, and a call of a keyed
    BLAKE2b hash and a dict lookup costs thousands of instructions, not zero or millions."""
    per_call = instructions.per_call("floor", 200, tmp_path)
    assert 1_000 < per_call < 50_000
