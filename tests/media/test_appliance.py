"""The whole appliance (``edgeroom run --sim``): in a room, recording from the page's API
on the same encode as its room video, then killed with SIGKILL mid-segment."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import av
import pytest

from drivers.camera.strip import decode_strip
from tests.harness.appliance import ApplianceProcess
from tests.harness.netns import Host

from .conftest import is_increasing, probe

pytestmark = [pytest.mark.janus, pytest.mark.slow, pytest.mark.timeout(150)]


class Api:
    """The appliance's HTTP API, called with curl inside its network namespace."""

    def __init__(self, host: Host, workdir: Path, port: int) -> None:
        self.host = host
        self.base = f"http://127.0.0.1:{port}"
        self.jar = workdir / "cookies"
        self.csrf = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        cmd = [*self.host.exec_prefix(), "curl", "-s", "--max-time", "10", "-X", method,
               "-b", str(self.jar), "-c", str(self.jar), "-H", f"X-CSRF-Token: {self.csrf}",
               "-H", "Content-Type: application/json", f"{self.base}{path}"]
        if body is not None:
            cmd[-1:-1] = ["-d", json.dumps(body)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
        return json.loads(out) if out else None

    def fetch(self, path: str, out: Path) -> int:
        """GET ``path`` into ``out``; returns the HTTP status."""
        cmd = [*self.host.exec_prefix(), "curl", "-s", "--max-time", "10", "-o", str(out),
               "-w", "%{http_code}", "-b", str(self.jar), f"{self.base}{path}"]
        return int(subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout)

    def login(self, password: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply = self.call("POST", "/api/login", {"password": password})
            except json.JSONDecodeError:
                reply = None
            if reply and "csrf_token" in reply:
                self.csrf = reply["csrf_token"]
                return
            time.sleep(0.3)
        raise AssertionError("could not log in to the appliance's API")


def test_appliance_records_its_room_video_and_survives_sigkill(
        network: Any, janus: Any, make_peer: Any, room_number: int, tmp_path: Path,
        edgeroom_cmd: list[str], clean_env: dict[str, str]) -> None:
    host = network.add_host("recbox")
    app = ApplianceProcess(host, tmp_path / "box", {
        "room": {"server": janus.url, "room": room_number, "display_name": "box"},
        "sim": {"mic": "tone:440"},
        "video": {"width": 320, "height": 240, "fps": 15, "encoder": "libx264"},
        "web": {"listen": "127.0.0.1:8080"},
        "record": {"segment_seconds": 2, "format": "mkv"},
    })
    password = subprocess.run([*edgeroom_cmd, "password", "reset", "--state-dir",
                               str(app.state_dir)], capture_output=True, text=True,
                              env=clean_env, timeout=30, check=True).stdout.strip()
    app.start()
    viewer = make_peer("viewer", room_number, tone=None, collect_video=True)
    try:
        viewer.call(lambda s: s.join())
        viewer.wait_for(lambda: [m for m in viewer.session.members()
                                 if m.display == "box" and m.has_video], timeout=40,
                        what="the appliance publishing video")
        box = next(m for m in viewer.session.members() if m.display == "box")
        api = Api(host, tmp_path, 8080)
        api.login(password)
        started = api.call("POST", "/api/record", {"state": "start"})
        assert started["ok"] and started["result"]["recording"] is True
        viewer.wait_for(lambda: len(viewer.video_numbers.get(box.id, [])) > 30, timeout=30,
                        what="frames of the appliance's camera")
        # The page's preview shows the same camera: a JPEG with the pattern's frame strip.
        jpeg = tmp_path / "preview.jpg"
        assert api.fetch("/api/camera.jpg", jpeg) == 200
        with av.open(str(jpeg)) as container:
            picture = next(container.decode(video=0))
        assert (picture.width, picture.height) == (320, 240)
        strip = decode_strip(picture.reformat(format="yuv420p"))
        assert strip is not None and strip.frame_number > 0

        def segments_done() -> list[str]:
            status = api.call("GET", "/api/status")["media"]
            return status["recording"]["files"][:-1] if len(status["recording"]["files"]) > 2 \
                else []

        finished = viewer.wait_for(segments_done, timeout=40, what="two finished segments")
        media = api.call("GET", "/api/status")["media"]
        encoder = media["encoder"]
        # one H.264 encode serves the room (an "h264,vp8" room) and the recording: two
        # subscribers, opened once
        h264 = encoder["encodes"]["h264"]
        assert encoder["codecs"] == ["h264"]
        assert h264["subscribers"] == 2 and h264["codec_opens"] == 1
        assert encoder["duplicate_frames"] == 0 and h264["encoder"] == "libx264"
        time.sleep(1.0)  # into the next segment
        assert app.proc is not None
        app.proc.send_signal(signal.SIGKILL)  # a power cut, as far as the files can tell
        app.proc.wait(10)
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    finally:
        app.stop()
    seen = set(viewer.video_numbers.get(box.id, []))
    recordings = app.state_dir / "recordings"
    for name in finished:
        got = probe(recordings / name)
        assert got["errors"] == [], name
        assert (got["video_codec"], got["audio_codec"]) == ("h264", "aac")
        assert got["unreadable_strips"] == 0 and is_increasing(got["frame_numbers"])
        # the room saw the frames the file holds: the same encode
        assert set(got["frame_numbers"]) & seen
