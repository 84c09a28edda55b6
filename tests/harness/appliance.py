"""``edgeroom run --sim`` processes inside a test namespace."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.harness.lifetime import child_setup
from tests.harness.netns import Host
from tests.harness.unit_env import unit_environment

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
EDGEROOM = REPO / ".venv" / "bin" / "edgeroom"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """``{"room": {...}}`` -> ``[room]``; ``{"link": [{...}, ...]}`` -> ``[[link]]`` tables."""
    lines = []
    for section, values in config.items():
        for table in values if isinstance(values, list) else [values]:
            lines.append(f"[[{section}]]" if isinstance(values, list) else f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
            lines.append("")
    path.write_text("\n".join(lines))
    return path


class ApplianceProcess:
    """One appliance: its config and state dir in ``workdir``, run in ``host``'s namespace."""

    def __init__(self, host: Host, workdir: Path, config: dict[str, Any]) -> None:
        self.host = host
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = workdir / "state"
        self.config_path = write_config(workdir / "edgeroom.toml", config)
        self.log_path = workdir / "edgeroom.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<ApplianceProcess {self.host.name} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def speaker_wav(self) -> Path:
        return self.state_dir / "speaker.wav"

    def start(self) -> None:
        exe = [str(EDGEROOM)] if EDGEROOM.exists() else [sys.executable, "-m", "device"]
        env = {**os.environ, **self.unit_env(), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": str(REPO)}
        with self.log_path.open("ab") as logf:
            self.proc = subprocess.Popen(
                [*self.host.exec_prefix(), *exe, "run", "--sim", "--config",
                 str(self.config_path), "--state-dir", str(self.state_dir)],
                stdout=logf, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                preexec_fn=child_setup())

    def unit_env(self, tree: Path = REPO) -> dict[str, str]:
        """The environment ``tree``'s systemd unit gives the appliance (as on the device)."""
        return unit_environment(self.workdir / "run", tree / "systemd" / "edgeroom.service")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
