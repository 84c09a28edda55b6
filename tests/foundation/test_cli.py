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
        "SKIP appliance", "PASS microphone", "PASS speaker", "PASS camera", "SKIP gpio",
        "SKIP serial", "PASS room server", "SKIP stream server"]
    assert "not running" in lines[0]


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


def test_doctor_asks_a_running_appliance_for_its_probes(
        edgeroom_cmd: list[str], clean_env: dict[str, str], tmp_path: Path) -> None:
    import socket
    import stat

    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(60)
    state = tmp_path / "state"
    cfg = tmp_path / "edgeroom.toml"
    cfg.write_text('[room]\nserver = "ws://127.0.0.1:9"\nauto_join = false\n'
                   '[web]\nlisten = "127.0.0.1:0"\n')
    env = dict(clean_env, EDGEROOM_CONFIG=str(cfg))
    proc = subprocess.Popen([*edgeroom_cmd, "run", "--sim", "--config", str(cfg),
                             "--state-dir", str(state)], env=dict(env, NOTIFY_SOCKET=str(notify)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert sock.recv(4096).decode().startswith("READY=1")
        control = state / "control.sock"
        assert stat.S_ISSOCK(control.stat().st_mode)
        assert stat.S_IMODE(control.stat().st_mode) == 0o600
        res = run(edgeroom_cmd, env, "doctor", "--sim", "--state-dir", str(state))
        lines = res.stdout.splitlines()
        assert lines[0].startswith(f"PASS appliance: running (pid {proc.pid}, idle"), res.stdout
        probes = {ln.split(":")[0]: ln for ln in lines if " probe " in ln}
        assert set(probes) == {"PASS probe mic", "PASS probe camera", "PASS probe speaker",
                               "PASS probe janus"}, res.stdout
        assert "idle (grace 5.0 s)" in probes["PASS probe mic"]  # nothing uses the mic
        # the devices it holds are not opened a second time
        assert any(ln.startswith("SKIP microphone: in use by the running appliance")
                   for ln in lines)
        # only the room server (port 9: nothing there) fails
        assert [ln for ln in lines if ln.startswith("FAIL")] == [
            ln for ln in lines if ln.startswith("FAIL room server")]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        sock.close()
    assert not (state / "control.sock").exists()
    res = run(edgeroom_cmd, env, "doctor", "--sim", "--state-dir", str(state))
    assert res.stdout.splitlines()[0].startswith("SKIP appliance: not running")
