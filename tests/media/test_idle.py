"""Idle is idle: out of a room, with nothing recording, streaming or previewing, the
appliance (``edgeroom run --sim``) has no speaker thread playing silence, no encode
thread, the camera and the mic closed, its speaker file does not grow, and it has not
loaded PyAV, aiortc or the certificate library; in the room the encoder and the mic run
(so the checks can fail) while the speaker rests, as nobody else is there to be heard
(the speaker in a room: tests/room/test_speaker_rest.py), and after leaving they are
gone again."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.appliance import ApplianceProcess
from tests.harness.polling import wait_for

from .test_appliance import Api

pytestmark = [pytest.mark.janus, pytest.mark.slow, pytest.mark.timeout(150)]

#: Threads that must not exist while idle (their OS names, see drivers.threadname).
#: "video-<camera>" is the frame thread, which encodes too where it may (drivers.common.nicer)
BUSY_THREADS = ("sim-speaker", "alsa-", "h264-", "vp8-", "sim-camera", "video-")


def thread_names(pid: int) -> list[str]:
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            continue  # ended meanwhile
    return names


def busy_threads(pid: int) -> list[str]:
    return [n for n in thread_names(pid) if n.startswith(BUSY_THREADS)]


#: Shared objects of the libraries a box out of a room does not load (PyAV with its
#: FFmpeg, aiortc's codecs, numpy; and the SRTP and certificate libraries aiortc would
#: bring, and the system's libsrtp2 with NSS, which the box never loads: its DTLS and
#: SRTP run on the libcrypto Python's ssl module maps): path parts in /proc/pid/maps.
MEDIA_LIBRARIES = ("/av/", "/av.libs/", "/aiortc/", "/numpy/", "/pylibsrtp/",
                   "/cryptography/", "/libsrtp2.so", "/libnss3.so")


def media_libraries(pid: int) -> set[str]:
    """Which of :data:`MEDIA_LIBRARIES` the process has mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {lib for lib in MEDIA_LIBRARIES if lib in maps}


def speaker_bytes(app: ApplianceProcess) -> int:
    return sum(p.stat().st_size for p in app.state_dir.glob("speaker*.wav"))


def media_status(api: Api) -> dict[str, Any]:
    media: dict[str, Any] = api.call("GET", "/api/status")["media"]
    return media


def assert_idle(app: ApplianceProcess, api: Api) -> None:
    assert app.pid is not None
    assert busy_threads(app.pid) == []
    media = media_status(api)
    assert media["mic"]["open"] is False and media["mic"]["users"] == []
    assert media["encoder"]["running"] is False and media["encoder"]["subscribers"] == 0
    before = speaker_bytes(app)
    time.sleep(1.0)  # a speaker playing silence writes 96 kB a second
    assert speaker_bytes(app) == before


def test_out_of_the_room_nothing_runs(network: Any, janus: Any, room_number: int,
                                      tmp_path: Path, edgeroom_cmd: list[str],
                                      clean_env: dict[str, str]) -> None:
    host = network.add_host("idlebox")
    app = ApplianceProcess(host, tmp_path / "box", {
        "room": {"server": janus.url, "room": room_number, "display_name": "box",
                 "auto_join": False},
        "sim": {"mic": "tone:440"},
        "video": {"width": 320, "height": 240, "fps": 15, "encoder": "libx264"},
        "web": {"listen": "127.0.0.1:8080"},
    })
    password = subprocess.run([*edgeroom_cmd, "password", "reset", "--state-dir",
                               str(app.state_dir)], capture_output=True, text=True,
                              env=clean_env, timeout=30, check=True).stdout.strip()
    app.start()
    try:
        api = Api(host, tmp_path, 8080)
        api.login(password)
        assert app.pid is not None
        assert_idle(app, api)
        assert media_libraries(app.pid) == set()  # not imported until something uses them

        assert api.call("POST", "/api/room/join", {})["ok"]
        wait_for(lambda: "-> in_room" in app.log_text(), 40, "the box in the room")
        # in the room: the camera is encoded, the mic is open; alone there, nothing is
        # heard, so the speaker rests
        pid = app.pid
        wait_for(lambda: any(n.startswith(("h264-", "video-")) for n in busy_threads(pid)),
                 20, "the encode threads")
        media = media_status(api)
        assert media["mic"]["open"] is True and media["encoder"]["running"] is True
        in_room = media_libraries(pid)
        assert {"/av/", "/numpy/"} <= in_room  # the check sees them
        # the room's DTLS and SRTP run on the system's OpenSSL (services.room.dtls)
        assert not {"/pylibsrtp/", "/cryptography/", "/libsrtp2.so", "/libnss3.so"} & in_room
        assert "sim-speaker" not in busy_threads(pid)
        assert api.call("GET", "/api/status")["room"]["speaker"] == "resting"
        assert speaker_bytes(app) == 0

        assert api.call("POST", "/api/room/leave", {})["ok"]
        wait_for(lambda: not busy_threads(pid), 20, f"the threads to end: {busy_threads(pid)}")
        assert_idle(app, api)
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    finally:
        app.stop()
