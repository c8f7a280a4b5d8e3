"""`cpu_split`'s accounting: CPU charged to the right threads, child processes included."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from bench.profile import thread_seconds


def test_a_busy_thread_is_charged_and_only_a_process_main_thread_counts_as_its_loop() -> None:
    native_id: list[int] = []
    done = threading.Event()

    def spin() -> None:
        native_id.append(threading.get_native_id())
        until = time.thread_time() + 0.3
        while time.thread_time() < until:
            pass
        done.wait(5)  # still alive, so still in /proc, when read below

    worker = threading.Thread(target=spin)
    worker.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the kernel has charged the spin
        if native_id and thread_seconds(os.getpid()).get((native_id[0], False), 0) >= 0.25:
            break
        time.sleep(0.05)
    seconds = thread_seconds(os.getpid())
    done.set()
    worker.join()

    assert seconds[native_id[0], False] >= 0.25
    assert (os.getpid(), True) in seconds


def test_the_threads_of_child_processes_are_counted() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"]) as child:
        try:
            time.sleep(0.2)
            assert (child.pid, True) in thread_seconds(os.getpid())
        finally:
            child.kill()
