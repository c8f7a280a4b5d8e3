"""Run with `pytest bench/test_wrk.py`: the report parser and the Lua quoting, without wrk."""

import pytest

from bench import wrk

REPORT = """\
Running 2s test @ http://127.0.0.1:8000/v1/keys:verify
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.07ms  600.00us  1.02s    97.00%
    Req/Sec    15.55k   500.00    16.00k    80.00%
  Latency Distribution
     50%  950.00us
     75%    1.97ms
     90%    2.16ms
     99%    1.20s
  31116 requests in 2.00s, 4.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  15551.10
Transfer/sec:      2.00MB
"""


def test_parse_converts_every_unit_to_milliseconds() -> None:
    result = wrk.parse(REPORT)
    assert result.requests_per_second == 15551.10
    assert result.requests == 31116
    assert result.p50_ms == pytest.approx(0.95)
    assert result.latency_ms[75] == pytest.approx(1.97)
    assert result.p99_ms == pytest.approx(1200.0)


def test_errors_count_socket_errors_and_non_2xx_without_script_tally() -> None:
    assert wrk.parse(REPORT).errors == 3 + 7


def test_script_tally_replaces_non_2xx_because_it_counts_them_too() -> None:
    assert wrk.parse(REPORT + "unexpected_responses: 9\n").errors == 3 + 9


def test_parse_refuses_a_report_without_percentiles() -> None:
    without_latency = REPORT.replace("     99%    1.20s\n", "")
    with pytest.raises(ValueError, match="percentiles"):
        wrk.parse(without_latency)


@pytest.mark.parametrize("text", ["plain", "a]]b", "a]=]b]]", 'q"uote\\n'])
def test_lua_string_closes_with_a_bracket_absent_from_the_text(text: str) -> None:
    literal = wrk.lua_string(text)
    opening = literal[: literal.index("[", 1) + 1]
    closing = opening.replace("[", "]")
    assert literal == opening + text + closing
    assert closing not in text
