from __future__ import annotations

import json
import subprocess
from pathlib import Path


def run(cmd: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=120)


def test_version(edgeroom_cmd: list[str], clean_env: dict[str, str]) -> None:
    from device import __version__

    res = run(edgeroom_cmd, clean_env, "--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"edgeroom {__version__}"


def test_devices_json_reports_this_box(edgeroom_cmd: list[str], clean_env: dict[str, str],
                                       tmp_path: Path) -> None:
    env = dict(clean_env, EDGEROOM_CONFIG=str(tmp_path / "none.toml"))
    res = run(edgeroom_cmd, env, "devices", "--json")
    assert res.returncode == 0, res.stderr
    inv = json.loads(res.stdout)
    for kind in ("microphones", "speakers", "cameras", "serial_ports", "gpio"):
        assert {"backend", "configured", "present", "reason", "devices"} <= set(inv[kind])
    assert inv["microphones"]["backend"] == "alsa"
    sim = json.loads(run(edgeroom_cmd, env, "devices", "--json", "--sim").stdout)
    assert sim["microphones"]["backend"] == "sim"
    assert sim["cameras"]["backend"] == "sim"
    text = run(edgeroom_cmd, env, "devices")
    assert "Microphones:" in text.stdout and "Cameras:" in text.stdout


def test_doctor_sim_passes(edgeroom_cmd: list[str], clean_env: dict[str, str],
                           tmp_path: Path) -> None:
    env = dict(clean_env, EDGEROOM_CONFIG=str(tmp_path / "none.toml"))
    res = run(edgeroom_cmd, env, "doctor", "--sim", "--state-dir", str(tmp_path / "st"))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines] == [
        "PASS microphone", "PASS speaker", "PASS camera", "SKIP gpio", "SKIP serial",
        "PASS room server"]


def test_doctor_reports_missing_hardware(edgeroom_cmd: list[str], clean_env: dict[str, str],
                                         tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[audio]\nbackend = "alsa"\nmic_device = "no_such_pcm"\n'
                   '[video]\nbackend = "v4l2"\ndevice = "/dev/video99"\n'
                   '[serial]\nport = "/dev/ttyNOPE0"\n'
                   '[room]\nserver = "ws://127.0.0.1:9"\n')
    res = run(edgeroom_cmd, clean_env, "doctor", "--config", str(cfg),
              "--state-dir", str(tmp_path / "st"))
    assert res.returncode == 1
    out = res.stdout
    assert "FAIL microphone: DeviceNotFound" in out and "no_such_pcm" in out
    assert "FAIL camera: DeviceNotFound" in out and "/dev/video99" in out
    assert "FAIL serial:" in out and "/dev/ttyNOPE0" in out
    assert "FAIL room server:" in out and "ws://127.0.0.1:9" in out
