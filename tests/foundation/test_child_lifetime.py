"""Processes a test or a benchmark starts die with it, however it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A parent that starts a long sleeper the way the harness starts Janus or an appliance,
# prints the sleeper's pid and then waits to be killed.
PARENT = """
import subprocess, sys, time
from tests.harness.lifetime import child_setup
setup = child_setup() if sys.argv[1] == "harness" else None
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         preexec_fn=setup)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _orphan_after_sigkill(mode: str, wait_s: float) -> tuple[int, bool]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], cwd=REPO,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + wait_s
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    return child, _alive(child)


def test_a_child_started_by_the_harness_dies_when_its_starter_is_killed() -> None:
    _, alive = _orphan_after_sigkill("harness", 10)
    assert not alive


def test_without_it_the_child_would_outlive_its_starter() -> None:
    child, alive = _orphan_after_sigkill("plain", 1)
    try:
        assert alive, "a plain Popen child died with its parent: the check above proves nothing"
    finally:
        os.kill(child, signal.SIGKILL)
