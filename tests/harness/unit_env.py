"""The environment the systemd unit gives the appliance, for processes the harness starts.

The device runs ``edgeroom`` with the ``Environment=`` lines of ``systemd/edgeroom.service``
(``MALLOC_ARENA_MAX`` among them): a test or benchmark that started it without them
would run, and measure, a process the device never runs. Paths under the unit's
``RuntimeDirectory`` (``/run/edgeroom``) are mapped to a directory of the caller's.
"""

from __future__ import annotations

import shlex
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edgeroom.service"
RUNTIME_DIR = "/run/edgeroom"


def unit_environment(runtime_dir: Path, unit: Path = UNIT) -> dict[str, str]:
    """``Environment=`` of the unit's ``[Service]`` section (later lines win), with
    :data:`RUNTIME_DIR` replaced by ``runtime_dir`` (created). A tree whose unit has none
    gives ``{}``."""
    env: dict[str, str] = {}
    if not unit.exists():
        return env
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and line.startswith("Environment="):
            for item in shlex.split(line.partition("=")[2]):
                key, sep, value = item.partition("=")
                if sep:
                    env[key] = value
    mapped = {k: v.replace(RUNTIME_DIR, str(runtime_dir)) for k, v in env.items()}
    if mapped != env:
        runtime_dir.mkdir(parents=True, exist_ok=True)
    return mapped
