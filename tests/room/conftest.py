"""Room tests run against a real Janus in private network namespaces."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.harness.audio import tone_power, wav_tail
from tests.harness.fixtures import (  # noqa: F401  (fixtures)
    janus,
    make_appliance,
    make_peer,
    network,
    room_number,
    room_with_codec,
)


def wait_tone(path: Path, freq: float, present: bool = True, timeout: float = 15.0,
              window: float = 1.0, threshold: float = 0.1) -> float:
    """Wait until the last ``window`` s of a sim speaker WAV has (or lacks) ``freq``.

    No file lacks it: in a room the speaker starts (and writes its WAV) only once there
    is something to hear."""
    deadline = time.monotonic() + timeout
    power = -1.0
    while time.monotonic() < deadline:
        if not present and not path.exists():
            return 0.0
        if path.exists():
            power = tone_power(wav_tail(path, window), freq)
            if (power >= threshold) if present else (power < threshold / 10):
                return power
        time.sleep(0.2)
    raise AssertionError(f"{path.name}: {freq} Hz {'never appeared' if present else 'stayed'}"
                         f" (power {power:.3f})")


def two_boxes_meet(peer: Any, room: int | str, url: str,
                   **a_settings: Any) -> tuple[Any, Any]:
    """Boxes A (camera, 440 Hz) and B (880 Hz) join ``room`` on the server at ``url``;
    returns them once each hears the other and B has decoded 30 of A's frames.
    ``peer`` is the ``make_peer`` fixture."""
    a = peer("a", room, tone="tone:440", camera=True, url=url, **a_settings)
    b = peer("b", room, tone="tone:880", collect_video=True, receive_video=True,
                  url=url)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(b.speaker_path, 440, timeout=20)
    wait_tone(a.speaker_path, 880, timeout=20)
    a_id = a.session.local_id
    b.wait_for(lambda: len(b.video_numbers.get(a_id, [])) > 30, timeout=20,
               what="A's video at B")
    return a, b
