import logging
import threading

import pytest

from llavero.core.background import Periodic

log = logging.getLogger("test.background")


def test_the_job_runs_until_stopped_and_survives_failures(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    third_run = threading.Event()

    def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("database restarting")
        if len(runs) >= 3:
            third_run.set()

    periodic = Periodic("test-job", 0.01, job, log)
    periodic.start()
    assert third_run.wait(5), "the job stopped after its first failure"
    periodic.stop()
    stopped_at = len(runs)
    third_run.clear()
    assert not third_run.wait(0.1), "the job ran after stop()"
    assert len(runs) == stopped_at
    assert "test-job failed" in caplog.text


def test_an_interval_of_zero_is_off() -> None:
    runs: list[int] = []
    periodic = Periodic("off", 0, lambda: runs.append(1), log)
    periodic.start()
    periodic.stop()
    assert runs == []


def test_wake_runs_the_job_now_rather_than_after_the_interval() -> None:
    """The change feed's listener wakes the poll after a reconnect, to catch up at once."""
    ran = threading.Event()
    periodic = Periodic("test-wake", 3600, ran.set, log)
    periodic.start()
    try:
        periodic.wake()
        assert ran.wait(10), "woken, the job did not run"
    finally:
        periodic.stop()


def test_a_job_failing_for_a_while_logs_one_traceback_and_a_line_when_it_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    recovered = threading.Event()

    def job() -> None:
        runs.append(len(runs))
        if len(runs) <= 20:
            raise RuntimeError("database restarting")
        recovered.set()

    periodic = Periodic("flaky-job", 0.005, job, log)
    with caplog.at_level(logging.INFO, logger=log.name):
        periodic.start()
        assert recovered.wait(10), "the job never ran again"
        periodic.stop()

    lines = [record for record in caplog.records if record.name == log.name]
    assert [record.levelname for record in lines] == ["ERROR", "INFO"]
    assert lines[0].exc_info is not None  # the first failure, with its traceback
    assert "flaky-job works again after" in lines[1].getMessage()
