"""Shared test settings: every test module may rely on these."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def edgeroom_cmd() -> list[str]:
    """The ``edgeroom`` command of this checkout's environment."""
    exe = VENV_BIN / "edgeroom"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "device"]


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment for child appliances: no systemd sockets leak in from outside."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                        "EDGEROOM_CONFIG", "EDGEROOM_STATE_DIR")}
    env["PYTHONUNBUFFERED"] = "1"
    return env
