"""Shared test settings: every test module may rely on these."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import services  # noqa: F401  (first, as in the appliance: aiortc runs on the room's DTLS)
from tests.harness import loopguard
from tests.harness.unit_env import unit_environment

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def edgeroom_cmd() -> list[str]:
    """The ``edgeroom`` command of this checkout's environment."""
    exe = VENV_BIN / "edgeroom"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "device"]


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment for child appliances: the unit's ``Environment=`` lines (as on the
    device), and no systemd sockets leak in from outside."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                        "EDGEROOM_CONFIG", "EDGEROOM_STATE_DIR")}
    env.update(unit_environment(tmp_path / "run"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


#: Integration tests: the appliance (or its services) runs on an event loop in-process.
#: Blocking calls on a loop's thread and slow callbacks fail them (tests/harness/loopguard.py).
GUARDED_DIRS = ("control", "foundation", "media", "room", "web")


@pytest.fixture(autouse=True)
def loop_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    path = Path(str(request.node.path)).resolve()
    try:
        guarded = path.relative_to(ROOT / "tests").parts[0] in GUARDED_DIRS
    except ValueError:
        guarded = False
    guarded = guarded or request.node.get_closest_marker("loop_guard") is not None
    if not guarded or request.node.get_closest_marker("loop_guard_off"):
        yield
        return
    loopguard.install()
    loopguard.GUARD.start()
    try:
        yield
    finally:
        problems = loopguard.GUARD.stop()
    if problems:
        pytest.fail("the event loop was blocked:\n  " + "\n  ".join(problems[:20]),
                    pytrace=False)
