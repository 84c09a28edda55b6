"""Config saves that cannot break the box, and config files that cannot crash it.

Values that cannot be stored (control characters, lone surrogates) are refused with a
field error; a value that saves always loads; saves keep the operator's file as it was
apart from the changed keys, follow a symlink, sweep stale temp files and fsync off the
event loop; ``web.listen`` must be usable; unusable files give one line, no traceback.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device import config
from device.config_check import check_text
from device.errors import ConfigError
from tests.web import conftest as web_fixtures
from tests.web.conftest import Served, login

# The page's fixtures (an in-process appliance with its web server, a client session).
served = web_fixtures.served
http = web_fixtures.http
log_ring = web_fixtures.log_ring

TIMEOUT = 10.0

SHIPPED = """\
# edgeroom config: every key is optional.

[room]
# the Janus to join
server = "local"   # or ws://host:8188
room = 1234

display_name = "Front desk"

[audio]
# echo cancellation on
aec = true
mic_volume = 90
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- values ------------------------------------------------------------------------------


async def _patch(served: Served, http: aiohttp.ClientSession, body: bytes | dict[str, object],
                 ) -> tuple[int, dict[str, object]]:
    csrf = await login(http, served)
    headers = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with asyncio.timeout(TIMEOUT):
        async with http.patch(f"{served.url}/api/config", data=data, headers=headers) as r:
            return r.status, await r.json()


@pytest.mark.parametrize("raw", [
    b'{"room": {"display_name": "Kit\\u007fchen"}}',
    b'{"room": {"display_name": "\\ud800x"}}',
    b'{"room": {"pin": "12\\u000034"}}',
    b'{"gpio": {"buttons": {"ca\\u0001ll": 17}}}',
])
async def test_unstorable_text_is_a_field_error(served: Served, http: aiohttp.ClientSession,
                                                raw: bytes) -> None:
    before = served.appliance.config
    status, data = await _patch(served, http, raw)
    assert status == 400, data
    [error] = data["errors"]  # type: ignore[misc]
    assert error["key"] in ("room.display_name", "room.pin", "gpio.buttons")
    assert "control character" in error["message"] or "surrogate" in error["message"]
    assert served.appliance.config == before
    assert not served.appliance.config_path.exists()  # nothing was written


def test_a_file_with_a_control_character_names_the_key() -> None:
    # TOML itself only allows control characters escaped; an escaped one is refused too.
    with pytest.raises(ConfigError) as info:
        config.parse('[room]\ndisplay_name = "Kit\\u007Fchen"\n', "c.toml")
    [issue] = info.value.issues
    assert (issue.key, issue.line) == ("room.display_name", 2)
    assert "U+007F" in issue.message


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.characters(exclude_categories=()), max_size=40),
       pin=st.text(min_size=1, max_size=12))
def test_a_value_that_saves_always_loads(tmp_path: Path, name: str, pin: str) -> None:
    path = tmp_path / "edgeroom.toml"
    path.write_text(SHIPPED)
    try:
        new = config.load(path).replace({"room": {"display_name": name, "pin": pin}})
    except ConfigError as exc:
        # Refused values are refused for a reason that names the key.
        assert {i.key for i in exc.issues} <= {"room.display_name", "room.pin"}
        with pytest.raises(ValueError):
            for text in (name, pin):
                check_text(text)
        return
    config.save(path, new)
    assert config.load(path) == new


# -- web.listen --------------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:", ":8080", "[::1:8080",
                                    "300.1.1.1:80", "host name:80"])
def test_listen_form_is_checked_in_the_file(tmp_path: Path, edgeroom_cmd: list[str],
                                            clean_env: dict[str, str], listen: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[web]\nlisten = "{listen}"\n')
    res = subprocess.run([*edgeroom_cmd, "config", "check", str(path)], capture_output=True,
                         text=True, env=clean_env, timeout=60)
    assert res.returncode == 1
    assert f"{path}:2: web.listen:" in res.stderr, res.stderr


async def test_listen_must_be_usable_on_this_box(served: Served,
                                                 http: aiohttp.ClientSession) -> None:
    before = served.appliance.config
    # 192.0.2.1 (TEST-NET-1) is never an address of this box; nothing is sent to it.
    for listen, words in (("192.0.2.1:8080", "not an address of this box"),
                          ("127.0.0.1:99999", "1-65535"),
                          ("localhost:0", "unknown address")):
        status, data = await _patch(served, http, {"web": {"listen": listen}})
        assert status == 400, data
        [error] = data["errors"]  # type: ignore[misc]
        assert error["key"] == "web.listen" and words in error["message"], error
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, data = await _patch(served, http, {"web": {"listen": f"127.0.0.1:{port}"}})
        assert status == 400 and "in use" in json.dumps(data)
    assert served.appliance.config == before
    status, data = await _patch(served, http, {"web": {"listen": f"127.0.0.1:{_free_port()}"}})
    assert status == 200, data


# -- saves -------------------------------------------------------------------------------


def test_save_changes_only_the_changed_lines(tmp_path: Path) -> None:
    path = tmp_path / "edgeroom.toml"
    path.write_text(SHIPPED)
    old = config.load(path)
    new = old.replace({"room": {"room": 77}, "audio": {"mic_volume": 100, "agc": False},
                       "serial": {"port": "loop://"}})
    config.save(path, new, old)
    text = path.read_text()
    assert config.load(path) == new
    diff = [line for line in difflib.unified_diff(SHIPPED.splitlines(), text.splitlines(),
                                                  lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    # room changed in place, mic_volume (now the default) kept as a key, agc added in its
    # table, a new [serial] table at the end; every comment and blank line survives.
    assert diff == ["-room = 1234", "+room = 77", "-mic_volume = 90", "+mic_volume = 100",
                    "+agc = false", "+", "+[serial]", '+port = "loop://"'], diff
    # Resetting an optional key removes it.
    config.save(path, new.replace({"serial": {"port": None}}), new)
    assert "[serial]" in path.read_text() and "port =" not in path.read_text()


def test_save_keeps_hand_edits_to_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "edgeroom.toml"
    path.write_text(SHIPPED)
    old = config.load(path)
    path.write_text(SHIPPED.replace("mic_volume = 90", "mic_volume = 60  # by hand"))
    config.save(path, old.replace({"room": {"room": 5}}), old)
    assert "mic_volume = 60  # by hand" in path.read_text()
    assert config.load(path).room.room == 5


def test_a_new_file_gets_every_key_set(tmp_path: Path) -> None:
    # After a factory reset the file is gone but the pin map stays in effect: the first
    # save must write it too, not only the key that changed.
    path = tmp_path / "edgeroom.toml"
    kept = config.Config().replace({"gpio": {"buttons": {"call": 17}}})
    config.save(path, kept.replace({"room": {"room": 8}}), kept)
    assert config.load(path) == kept.replace({"room": {"room": 8}})


def test_save_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real" / "edgeroom.toml"
    real.parent.mkdir()
    real.write_text(SHIPPED)
    real.chmod(0o640)
    link = tmp_path / "edgeroom.toml"
    link.symlink_to(real)
    old = config.load(link)
    config.save(link, old.replace({"room": {"room": 9}}), old)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert config.load(real).room.room == 9
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # the operator's mode is kept
    assert [p.name for p in real.parent.iterdir()] == ["edgeroom.toml"]


def test_save_sweeps_temp_files_of_dead_writers(tmp_path: Path) -> None:
    path = tmp_path / "edgeroom.toml"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".edgeroom.toml.{dead.pid}.abc123.tmp"
    stale.write_text("half")
    live = tmp_path / f".edgeroom.toml.{os.getppid()}.def456.tmp"  # a writer still running
    live.write_text("busy")
    config.save(path, config.Config().replace({"room": {"room": 3}}))
    assert not stale.exists() and live.exists()
    assert config.load(path).room.room == 3


def test_a_new_config_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "edgeroom.toml"
    config.save(path, config.Config().replace({"room": {"pin": "1234"}}))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_the_page_saves_off_the_event_loop(served: Served, http: aiohttp.ClientSession,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        fsyncs.append(threading.get_ident())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    status, data = await _patch(served, http, {"room": {"room": 4242}})
    assert status == 200, data
    assert len(fsyncs) == 2  # the file and its directory
    assert loop_thread not in fsyncs


async def test_concurrent_saves_lose_nothing(served: Served,
                                             http: aiohttp.ClientSession) -> None:
    csrf = await login(http, served)
    h = {"X-CSRF-Token": csrf}

    async def one(key: str, value: int) -> int:
        async with http.patch(f"{served.url}/api/config", headers=h,
                              json={"audio": {key: value}}) as r:
            return r.status

    async with asyncio.timeout(TIMEOUT * 3):
        codes = await asyncio.gather(*(one(k, v) for k, v in
                                       (("mic_volume", 11), ("speaker_volume", 22))))
    assert codes == [200, 200]
    on_disk = config.load(served.appliance.config_path)
    assert (on_disk.audio.mic_volume, on_disk.audio.speaker_volume) == (11, 22)


# -- files that cannot be used -----------------------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    nested = tmp_path / "nested.toml"
    nested.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    nested_tables = tmp_path / "tables.toml"
    nested_tables.write_text("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[room]\ndisplay_name = "K\xfcche"\n')
    return {"directory": (directory, "is a directory"),
            "nested arrays": (nested, "nested too deeply"),
            "nested tables": (nested_tables, "nested too deeply"),
            "not utf-8": (latin1, ":2: (file): not UTF-8 text")}


@pytest.mark.parametrize("command", ["check", "run"])
def test_unusable_files_give_one_line(tmp_path: Path, edgeroom_cmd: list[str],
                                      clean_env: dict[str, str], command: str) -> None:
    for what, (path, words) in _bad_files(tmp_path).items():
        args = (["config", "check", str(path)] if command == "check" else
                ["run", "--sim", "--config", str(path), "--state-dir", str(tmp_path / "st")])
        res = subprocess.run([*edgeroom_cmd, *args], capture_output=True, text=True,
                             env=clean_env, timeout=60)
        assert res.returncode == 1, (what, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (what, res.stderr)
        assert str(path) in lines[0]


DROP_AND_CHECK = """
import os, sys
from device import cli, config_check  # loaded as root: the tree may not be readable later
cli.build_parser().parse_args(["config", "check", "x"])  # and what argparse loads lazily
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(cli.main(["config", "check", sys.argv[1]]))
"""


def test_an_unreadable_file_gives_one_line(tmp_path: Path, clean_env: dict[str, str]) -> None:
    # Tests run as root, who reads every file: the command drops to "nobody" first.
    if os.geteuid() != 0:
        pytest.fail("needs root to drop to another user")
    open_dir = Path(tempfile.mkdtemp(prefix="edgeroom-unreadable-"))
    try:
        open_dir.chmod(0o711)  # nobody may look up names in it, not read what is inside
        unreadable = open_dir / "secret.toml"
        unreadable.write_text("[room]\nroom = 5\n")
        unreadable.chmod(0o600)
        hidden = tmp_path / "edgeroom.toml"  # under pytest's 0700 dir: not even reachable
        hidden.write_text("[room]\nroom = 5\n")
        for path in (unreadable, hidden):
            res = subprocess.run([sys.executable, "-c", DROP_AND_CHECK, str(path)],
                                 capture_output=True, text=True, env=clean_env, timeout=60,
                                 cwd=Path(__file__).resolve().parents[2])
            assert res.returncode == 1, res.stdout + res.stderr
            assert res.stderr.strip() == f"{path}: (file): cannot be read: permission denied"
    finally:
        shutil.rmtree(open_dir)
