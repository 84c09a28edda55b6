"""The appliance's processes: its Janus dies with it, signals stop it cleanly, one
appliance per state dir, and what it writes is private whatever the caller's umask.

Each test runs ``edgeroom run --sim`` with ``room.server = "local"`` (a real Janus on
loopback, on free ports) without systemd, so nothing but the appliance itself ties the
Janus to it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

STARTUP = 40.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _processes_using(path: Path) -> list[int]:
    """Live (not zombie) processes whose command line mentions ``path``."""
    found = []
    needle = str(path).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found.append(int(entry))
    return found


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Box:
    """One ``edgeroom run --sim`` with a local Janus, in ``workdir``."""

    def __init__(self, workdir: Path, cmd: list[str], env: dict[str, str]) -> None:
        self.workdir = workdir
        self.cmd = cmd
        self.env = env
        self.state_dir = workdir / "state"
        self.janus_dir = self.state_dir / "sfu" / "janus"
        self.web_port = _free_port()
        self.config_path = workdir / "edgeroom.toml"
        self.config_path.write_text(
            f'[room]\nserver = "local"\nlocal_port = {_free_port()}\nroom = 1234\n'
            f'[web]\nlisten = "127.0.0.1:{self.web_port}"\n')
        self.log_path = workdir / "edgeroom.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, umask: int = 0o022) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as logf:
            self.proc = subprocess.Popen(
                [*self.cmd, "run", "--sim", "--config", str(self.config_path),
                 "--state-dir", str(self.state_dir)],
                stdout=logf, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir,
                preexec_fn=lambda: os.umask(umask) and None)
        return self.proc

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def janus_pids(self) -> list[int]:
        return _processes_using(self.janus_dir)

    def wait_janus(self) -> list[int]:
        _wait_for(lambda: "local janus started" in self.log() and self.janus_pids(), STARTUP,
                  f"the local janus\n{self.log()}")
        return self.janus_pids()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in self.janus_pids():  # never leave a Janus behind, even when a test fails
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def boxes() -> Iterator[list[Box]]:
    """The boxes a test made (with :func:`_new`); all stopped at the end."""
    made: list[Box] = []
    yield made
    for box in made:
        box.stop()


def _new(boxes: list[Box], tmp_path: Path, cmd: list[str], env: dict[str, str]) -> Box:
    (tmp_path / f"box{len(boxes)}").mkdir()
    box = Box(tmp_path / f"box{len(boxes)}", cmd, env)
    boxes.append(box)
    return box


@pytest.mark.slow
def test_sigkill_takes_the_janus_along(boxes: list[Box], tmp_path: Path,
                                       edgeroom_cmd: list[str],
                                       clean_env: dict[str, str]) -> None:
    box = _new(boxes, tmp_path, edgeroom_cmd, clean_env)
    proc = box.start()
    [janus] = box.wait_janus()
    proc.kill()
    proc.wait(10)
    _wait_for(lambda: not box.janus_pids(), 5.0, f"janus {janus} to die with the appliance")


@pytest.mark.slow
def test_sigterm_during_startup_leaves_no_janus(boxes: list[Box], tmp_path: Path,
                                                edgeroom_cmd: list[str],
                                                clean_env: dict[str, str]) -> None:
    for delay in (1.0, 1.4, 1.8, 2.5):
        box = _new(boxes, tmp_path, edgeroom_cmd, clean_env)
        proc = box.start()
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        # 0; or killed by the signal if it came before Python could install a handler
        # (a busy machine may take that long to start the interpreter): nothing ran yet.
        code = proc.wait(20)
        assert code in (0, -signal.SIGTERM), box.log()
        assert code == 0 or "local janus started" not in box.log()
        # The appliance stopped its Janus itself: nothing is left once it has exited.
        assert box.janus_pids() == [], (delay, box.log())
        assert "subsystem task" not in box.log(), box.log()  # every task stopped in time


@pytest.mark.slow
def test_sighup_stops_cleanly(boxes: list[Box], tmp_path: Path, edgeroom_cmd: list[str],
                              clean_env: dict[str, str]) -> None:
    box = _new(boxes, tmp_path, edgeroom_cmd, clean_env)
    proc = box.start()
    box.wait_janus()
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(20) == 0, box.log()
    log = box.log()
    assert "stopping" in log and "local janus stopped" in log, log
    assert "Traceback" not in log
    assert box.janus_pids() == []


@pytest.mark.slow
def test_one_appliance_per_state_dir(boxes: list[Box], tmp_path: Path,
                                     edgeroom_cmd: list[str],
                                     clean_env: dict[str, str]) -> None:
    box = _new(boxes, tmp_path, edgeroom_cmd, clean_env)
    first = box.start()
    box.wait_janus()
    second = subprocess.run(
        [*edgeroom_cmd, "run", "--sim", "--config", str(box.config_path),
         "--state-dir", str(box.state_dir)], capture_output=True, text=True, env=clean_env,
        timeout=60)
    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"edgeroom: another edgeroom (pid {first.pid}) is already running with state dir "
        f"{box.state_dir}"), second.stderr
    assert first.poll() is None and len(box.janus_pids()) == 1
    # The lock goes with the process, however it ends.
    first.kill()
    first.wait(10)
    again = box.start()
    box.wait_janus()
    assert again.poll() is None


def _api(opener: urllib.request.OpenerDirector, url: str, body: object | None = None,
         csrf: str | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json",
                                          **({"X-CSRF-Token": csrf} if csrf else {})})
    with opener.open(req, timeout=10) as r:
        result: dict[str, object] = json.loads(r.read())
        return result


@pytest.mark.slow
def test_what_it_writes_is_private(boxes: list[Box], tmp_path: Path,
                                   edgeroom_cmd: list[str], clean_env: dict[str, str]) -> None:
    box = _new(boxes, tmp_path, edgeroom_cmd, clean_env)
    password = subprocess.run([*edgeroom_cmd, "password", "reset", "--state-dir",
                               str(box.state_dir)], capture_output=True, text=True,
                              env=clean_env, timeout=60, check=True).stdout.strip()
    box.start(umask=0o022)  # what a shell usually has
    box.wait_janus()
    jcfgs = sorted(box.janus_dir.glob("*.jcfg"))
    assert len(jcfgs) >= 5
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in jcfgs} == {
        f.name: 0o600 for f in jcfgs}
    assert stat.S_IMODE(box.janus_dir.stat().st_mode) == 0o700

    url = f"http://127.0.0.1:{box.web_port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    _wait_for(lambda: _up(opener, url), STARTUP, "the page")
    csrf = str(_api(opener, f"{url}/api/login", {"password": password})["csrf_token"])
    _api(opener, f"{url}/api/record", {"state": "start"}, csrf)
    recordings = box.state_dir / "recordings"
    _wait_for(lambda: any(recordings.glob("*")), 30.0, "a recording file")
    time.sleep(2.0)
    _api(opener, f"{url}/api/record", {"state": "stop"}, csrf)
    files = [p for p in recordings.iterdir() if p.is_file()]
    assert files
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
    assert stat.S_IMODE(recordings.stat().st_mode) == 0o700
    assert stat.S_IMODE((box.state_dir / "sfu" / "janus.log").stat().st_mode) == 0o600


def _up(opener: urllib.request.OpenerDirector, url: str) -> bool:
    try:
        _api(opener, f"{url}/api/health")
    except OSError:
        return False
    return True
