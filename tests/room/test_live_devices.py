"""Devices switched live in a real room: another mic and speaker without leaving."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.harness.api_client import ApiClient
from tests.harness.audio import HEADER, RATE, switch_gap_ms, tone_levels
from tests.room.conftest import wait_tone
from tests.room.test_playback_room import box

pytestmark = [pytest.mark.janus, pytest.mark.timeout(150)]

#: The audio gap a live mic switch may leave (the goal of 100 ms is a bench row).
MAX_GAP_MS = 300


def samples_from(path, offset_bytes: int) -> np.ndarray:
    data = path.read_bytes()[max(HEADER, offset_bytes):]
    data = data[: len(data) // 2 * 2]
    return np.frombuffer(data, dtype=np.int16).astype(np.float64) / 32768.0


def test_a_mic_switch_in_a_call_leaves_a_short_gap(make_appliance, janus, room_number,
                                                    network):
    a = box(make_appliance, janus, room_number, "boxa", "tone:440")
    b = box(make_appliance, janus, room_number, "boxb", "tone:880")
    api = ApiClient(network, a, "client")
    try:
        wait_tone(b.speaker_wav, 440, timeout=40)
        wait_tone(a.speaker_wav, 880, timeout=40)
        api.login()
        time.sleep(1.5)  # a settled stretch of the first mic
        before = b.speaker_wav.stat().st_size - 2 * RATE  # from 1 s before the switch
        status, body = api.call("POST", "/api/actions/device",
                                {"kind": "mic", "id": "tone:660"})
        assert status == 200, body
        result = body["result"]
        assert result == {"kind": "mic", "from": "tone:440", "to": "tone:660",
                          "reason": "chosen", "live": True}, result
        wait_tone(b.speaker_wav, 660, timeout=10)
        time.sleep(1.5)
        x = samples_from(b.speaker_wav, before)
        gap_ms = switch_gap_ms(x, 440, 660)
        low, high = tone_levels(x, 440), tone_levels(x, 660)
        clean_low = float(np.median(low[:40]))
        clean_high = float(np.median(high[-40:]))
        first_high = int(np.argmax(high >= clean_high / 2))
        print(f"mic switch: {gap_ms:.0f} ms without either tone at B")
        assert gap_ms <= MAX_GAP_MS, gap_ms
        # After the switch only the new mic is heard, and steadily.
        after = slice(first_high + 5, None)
        assert (low[after] < clean_low / 4).all()
        assert (high[after] >= clean_high / 2).mean() > 0.95
        # The box was in the room all along.
        assert "in_room -> " not in a.log_text()
        assert "mic: tone:440 -> tone:660 (chosen, live)" in a.log_text()

        # The speaker too: A plays B on another sim speaker from now on.
        status, body = api.call("POST", "/api/actions/device",
                                {"kind": "speaker", "id": "speaker2.wav"})
        assert status == 200 and body["result"]["live"] is True, body
        wait_tone(a.state_dir / "speaker2.wav", 880, timeout=10)
        status, st = api.call("GET", "/api/status")
        assert st["devices_in_use"]["mic"] == "tone:660"
        assert st["devices_in_use"]["speaker"] == "speaker2.wav"
        status, body = api.call("POST", "/api/actions/device", {"kind": "mic", "id": "bogus"})
        assert status == 400 and body["error"] == "BAD_ARGUMENT", body
        # A saved config change of the mic ends the live choice: the config's mic is used.
        status, body = api.call("PATCH", "/api/config", {"sim": {"mic": "tone:1000"}})
        assert status == 200, body
        wait_tone(b.speaker_wav, 1000, timeout=40)
        status, st = api.call("GET", "/api/status")
        assert st["devices_in_use"]["mic"] == "tone:1000"
        assert a.alive() and b.alive()
    except AssertionError:
        print(a.log_text()[-4000:])
        raise
    finally:
        api.close()
