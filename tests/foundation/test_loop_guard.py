"""The loop guard (tests/harness/loopguard.py) fails a test that blocks its event loop.

A small test file that blocks the loop in each way the guard knows is run by pytest in a
child process, with this suite's conftest; each blocking test must fail at teardown naming
what blocked, and a test that does not block must pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BLOCKING_TESTS = '''
import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from services.media.output import WriterThread
from tests.harness import loopguard

loopguard.ROOTS.append(str(Path(__file__).parent) + os.sep)  # this file counts as ours
pytestmark = pytest.mark.loop_guard


async def test_fsync(tmp_path):
    with open(tmp_path / "f", "wb") as fh:
        fh.write(b"x")
        os.fsync(fh.fileno())


async def test_sleep():
    time.sleep(0.01)


async def test_thread_join():
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()


async def test_executor_shutdown_in_the_appliance():
    WriterThread("probe").close()  # services/media/output.py waits for its thread


async def test_slow_callback():
    def busy():
        start = time.thread_time()
        while time.thread_time() - start < 0.15:
            pass
    asyncio.get_running_loop().call_soon(busy)
    await asyncio.sleep(0.01)


async def test_not_blocking(tmp_path):
    await asyncio.to_thread(time.sleep, 0.01)
    thread = threading.Thread(target=lambda: None)
    thread.start()
    await asyncio.to_thread(thread.join)
    WriterThread("probe").close(wait=False)
    await asyncio.sleep(0.01)
'''


def test_blocking_the_loop_fails_the_test(tmp_path: Path) -> None:
    (tmp_path / "test_blocking.py").write_text(BLOCKING_TESTS)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "markers =\n    loop_guard: on\n    loop_guard_off: off\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-q", "-rA", "test_blocking.py"],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "6 passed, 5 errors" in out, out
    expect = {
        "test_fsync": "os.fsync() on the event loop's thread",
        "test_sleep": "time.sleep(0.01) on the event loop's thread",
        "test_thread_join": "Thread.join() of",
        "test_executor_shutdown_in_the_appliance":
            "ThreadPoolExecutor.shutdown(wait=True) on the event loop's thread (MainThread), "
            "from services/media/output.py",
        "test_slow_callback": "a loop callback used",
    }
    for name, reason in expect.items():
        assert f"ERROR test_blocking.py::{name}" in out, (name, out)
        section = out.split(f"ERROR at teardown of {name} ")[1].split("\n", 1)[1]
        section = section.split("____")[0]
        assert reason in section, (name, section)
    assert "PASSED test_blocking.py::test_not_blocking" in out, out
