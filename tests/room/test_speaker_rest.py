"""In a room, the speaker runs only while there is something to hear.

The whole appliance (``edgeroom run --sim``) in a room on a real Janus: with only a
listener beside it (nobody sends audio) its speaker thread does not exist and the sim
speaker's WAV is not written; a member who publishes a tone starts it before the first
of the voice plays, and it rests again its configured hold (``audio.speaker_hold_s``)
after that member left; a playback on the speaker while the box is alone in the room is
heard, and the speaker rests after it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.room.speaker_use import HOLD_S
from tests.harness.api_client import ApiClient
from tests.harness.appliance import ApplianceProcess
from tests.harness.audio import rms, wav_tail
from tests.room.conftest import wait_tone
from tests.room.test_playback_room import write_tone

pytestmark = [pytest.mark.janus, pytest.mark.slow, pytest.mark.timeout(180)]

#: the box's configured hold (``audio.speaker_hold_s``), shorter than the default
BOX_HOLD_S = 1.5


def speaker_thread(app: ApplianceProcess) -> bool:
    """True while the appliance has its ``sim-speaker`` thread."""
    for task in Path(f"/proc/{app.pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == "sim-speaker":
                return True
        except OSError:
            continue  # ended meanwhile
    return False


def speaker_bytes(app: ApplianceProcess) -> int:
    return sum(p.stat().st_size for p in app.state_dir.glob("speaker*.wav"))


def status(api: ApiClient) -> dict[str, Any]:
    code, body = api.call("GET", "/api/status")
    assert code == 200, body
    return dict(body)


def wait_speaker(api: ApiClient, state: str, timeout: float) -> float:
    """Wait until the status says the room's speaker is ``state``; the seconds it took."""
    t0 = time.monotonic()
    seen = None
    while time.monotonic() - t0 < timeout:
        seen = status(api)["room"].get("speaker")
        if seen == state:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"the room's speaker stayed {seen!r}, not {state!r}")


def assert_resting(app: ApplianceProcess, api: ApiClient, seconds: float) -> None:
    """For ``seconds``: no speaker thread, no WAV written, the status says resting and
    the watchdog's probes pass."""
    before = speaker_bytes(app)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not speaker_thread(app), "the speaker thread runs with nothing to play"
        time.sleep(0.1)
    assert speaker_bytes(app) == before, "the speaker's WAV grew with nothing to play"
    st = status(api)
    assert st["room"]["speaker"] == "resting", st["room"]
    assert st["stats"]["speaker"]["state"] == "resting", st["stats"].get("speaker")
    assert st["health"]["healthy"], st["health"]


def box(make_appliance: Any, janus: Any, room: int) -> ApplianceProcess:
    app: ApplianceProcess = make_appliance("box", {
        "room": {"server": janus.url, "room": room, "display_name": "box"},
        "sim": {"mic": "tone:440"},
        "audio": {"speaker_hold_s": BOX_HOLD_S},
        "video": {"enabled": False, "receive": False},
        "web": {"listen": "0.0.0.0:8080"},
    })
    return app


def first_sound_s(path: Path) -> tuple[float, float]:
    """(seconds into the WAV of its first loud 20 ms block, level of its first block)."""
    data = path.read_bytes()[44:]  # all written so far (the header lags up to 200 ms)
    x = np.frombuffer(data[: len(data) // 2 * 2], np.int16).astype(np.float64) / 32768
    block = 960
    for i in range(len(x) // block):
        if rms(x[i * block:(i + 1) * block]) >= 0.01:
            return i * block / 48_000, rms(x[:block])
    raise AssertionError(f"nothing loud in {path.name}")


def test_the_speaker_rests_until_a_member_sends_audio_and_after_they_leave(
        make_appliance, make_peer, janus, room_number, network):
    app = box(make_appliance, janus, room_number)
    ear = make_peer("ear", room_number, tone=None, role="listener")
    api = ApiClient(network, app, "client")
    try:
        api.login()
        ear.call(lambda s: s.join())
        ear.wait_for(lambda: [m for m in ear.session.members()
                              if m.display == "box" and m.has_audio],
                     timeout=40, what="the box publishing")
        time.sleep(1.5)  # the room's stats (once a second) carry the speaker's state
        # Nobody sends audio: no speaker thread, nothing written, for longer than the hold.
        assert_resting(app, api, HOLD_S + 1.0)

        talker = make_peer("talker", room_number, tone="tone:880")
        joined = time.monotonic()
        talker.call(lambda s: s.join())
        wait_tone(app.speaker_wav, 880, timeout=20)
        heard = time.monotonic() - joined
        print(f"the member's tone heard {heard:.2f} s after its join began")
        assert speaker_thread(app) and status(api)["room"]["speaker"] == "playing"
        # The speaker was playing before the voice's first frame: the file starts with
        # silence, then the tone (nothing of the voice came before the device was up).
        at, lead_level = first_sound_s(app.speaker_wav)
        print(f"first 880 Hz block {at * 1000:.0f} ms into the speaker's file")
        assert at >= 0.02 and lead_level < 0.001, (at, lead_level)

        talker.call(lambda s: s.leave())
        left = time.monotonic()
        rested = wait_speaker(api, "resting", HOLD_S + 10)
        after = time.monotonic() - left
        print(f"the speaker rested {after:.2f} s after the member left")
        # the configured hold, not the default one
        assert BOX_HOLD_S - 0.5 <= after < HOLD_S - 0.1, rested
        wait_gone = time.monotonic() + 5
        while speaker_thread(app):
            assert time.monotonic() < wait_gone, "the speaker thread did not end"
            time.sleep(0.1)
        # The hold played silence: what the file ends with is quiet, not the voice.
        assert rms(wav_tail(app.speaker_wav, 1.0)) < 0.001
        assert_resting(app, api, 1.5)
        assert app.alive()
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    finally:
        api.close()


def test_a_playback_on_the_speaker_is_heard_while_alone_in_the_room(
        make_appliance, janus, room_number, network):
    app = box(make_appliance, janus, room_number)
    write_tone(app.state_dir / "sounds" / "chime.wav", 1200, 2.0)
    api = ApiClient(network, app, "client")
    try:
        api.login()
        deadline = time.monotonic() + 40
        while "room: joining -> in_room" not in app.log_text():
            assert time.monotonic() < deadline, "the box never entered the room"
            time.sleep(0.1)
        time.sleep(1.5)
        assert_resting(app, api, 1.0)
        assert not app.speaker_wav.exists()
        code, body = api.call("POST", "/api/playbacks",
                              {"file": "sounds/chime.wav", "destination": "speaker"})
        assert code == 200, body
        wait_tone(app.speaker_wav, 1200, timeout=10, window=0.5)
        at, lead_level = first_sound_s(app.speaker_wav)
        assert at < 0.1 and lead_level > 0.01, (at, lead_level)  # from its first block
        deadline = time.monotonic() + 15
        while "playback pb1 ended (finished)" not in app.log_text():
            assert time.monotonic() < deadline, "the chime never finished"
            time.sleep(0.1)
        wait_speaker(api, "resting", BOX_HOLD_S + 5)
        assert rms(wav_tail(app.speaker_wav, 1.0)) < 0.001
        assert_resting(app, api, 1.0)
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    finally:
        api.close()
