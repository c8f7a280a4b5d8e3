"""The instruction counts: read from callgrind's output, and real counts under valgrind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import llavero
from bench import instructions


def test_the_count_is_the_totals_line_of_callgrinds_output() -> None:
    out = "version: 1\nevents: Ir\nsummary: 0\nfn=(1) main\n0 12\ntotals: 69197527\n"
    assert instructions.totals(out) == 69_197_527
    with pytest.raises(ValueError, match="no totals"):
        instructions.totals("events: Ir\n")


def test_a_functions_count_is_the_largest_of_the_paths_callgrind_annotate_shows_it_under() -> None:
    annotated = """\
--------------------------------------------------------------------------------
Ir                    file:function
--------------------------------------------------------------------------------
62,852,227 (92.83%)  /work/build/__native.c:CPyDef_verify___Verifier___verify [/work/x.so]
 1,044,000 ( 1.54%)  /usr/include/python3.11/object.h:CPyDef_verify___Verifier___verify
15,909,312 ( 7.09%)  ???:dumps [/venv/orjson.so]
"""
    assert instructions.function_counts(annotated) == {
        "CPyDef_verify___Verifier___verify": 62_852_227,
        "dumps": 15_909_312,
    }


def test_an_http_verify_is_the_sum_of_its_parts() -> None:
    """The unindented rows and the rest make the whole; indented rows are within another."""
    functions = {name: 1_000.0 for _, names in instructions.PARTS["http"] for name in names}
    rows = instructions.parts("http", 20_000.0, functions)
    top = [count for label, count in rows.items() if not label.startswith(" ")]
    assert sum(top) == 20_000.0
    assert rows[instructions.HTTP_REST] == 18_000.0  # the fast path and the threads: 1,000 each
    assert rows["  the answer as JSON (`VerifyResult.to_dict`, `orjson.dumps`)"] == 2_000.0


VALGRIND = pytest.mark.skipif(
    shutil.which("callgrind_control") is None, reason="valgrind not installed"
)


@VALGRIND
def test_a_keyed_hash_and_a_lookup_count_the_same_each_call(tmp_path: Path) -> None:
    """The floor under callgrind at two lengths: start-up cancels out, and a call of a keyed
    BLAKE2b hash and a dict lookup costs thousands of instructions, not zero or millions."""
    per_call, functions = instructions.per_call("floor", 200, tmp_path)
    assert 1_000 < per_call < 50_000
    assert functions == {}  # the floor has no parts


@VALGRIND
@pytest.mark.skipif(llavero.PURE_PYTHON, reason="the parts are compiled functions")
def test_every_part_of_a_verify_is_a_function_callgrind_counts(tmp_path: Path) -> None:
    """The compiled functions `PARTS` names are there (a renamed one would count 0), within
    the whole `Verifier.verify`."""
    per_call, functions = instructions.per_call("verify", 100, tmp_path)
    rows = instructions.parts("verify", per_call, functions)
    assert all(count > 100 for count in rows.values()), rows
    assert max(rows.values()) == rows["`Verifier.verify`"] < per_call
