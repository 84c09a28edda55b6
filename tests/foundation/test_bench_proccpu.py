"""The bench's per-thread CPU: the right thread is charged, a pool adds up."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.proccpu import (
    ThreadWindow,
    cpu_by_thread,
    cpu_delta,
    proc_cpu_seconds,
    rates,
    wakeups_by_thread,
    wakeups_note,
)
from drivers.threadname import name_this_thread


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_busy_pool_is_charged_and_an_idle_thread_is_not() -> None:
    pid = os.getpid()
    stop = threading.Event()
    idle = threading.Thread(target=lambda: (name_this_thread(), stop.wait()), name="idle-one")
    idle.start()
    try:
        before, total0 = cpu_by_thread(pid), proc_cpu_seconds(pid)
        with ThreadPoolExecutor(2, thread_name_prefix="busy-pool",
                                initializer=name_this_thread) as pool:
            list(pool.map(_spin, [0.3, 0.3]))
            spent = cpu_delta(before, cpu_by_thread(pid))  # while its threads still exist
    finally:
        stop.set()
        idle.join()
    assert spent.get("busy-pool", 0) >= 0.5  # both workers, under one name
    assert "idle-one" not in spent
    assert proc_cpu_seconds(pid) - total0 >= 0.5


def test_a_thread_that_sleeps_often_wakes_often() -> None:
    pid = os.getpid()
    stop = threading.Event()

    def ticking() -> None:
        name_this_thread()
        while not stop.wait(0.005):
            pass

    before, t0 = wakeups_by_thread(pid), time.monotonic()
    window = ThreadWindow(pid)
    ticker = threading.Thread(target=ticking, name="ticker")
    ticker.start()
    try:
        time.sleep(0.5)
        woke = rates(before, wakeups_by_thread(pid), time.monotonic() - t0)
        _, woke_in_window = window.end()
    finally:
        stop.set()
        ticker.join()
    assert woke.get("ticker", 0) >= 40  # about 200 a second; at least 20 in the half second
    assert list(woke.values()) == sorted(woke.values(), reverse=True)
    note = wakeups_note({"threads_wakeups_per_s": woke})
    assert note.startswith("; woke ") and f"ticker {woke['ticker']:.0f}" in note
    assert wakeups_note({}) == ""
    assert woke_in_window.get("ticker", 0) >= 40  # the same, through a window
