"""The shared mic opens for its first user and closes with its last one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from drivers.audio.sim import SimMic
from drivers.errors import DeviceNotFound
from services.media.audio import MicTee
from services.room.micuse import RoomMicUse

T = 5.0


def tee_with_events(tmp_path: Path) -> tuple[MicTee, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    tee = MicTee(lambda: SimMic("tone:440", state_dir=tmp_path),
                 emit=lambda name, data: events.append((name, data)))
    return tee, events


async def test_branches_and_holders_share_one_open_device(tmp_path: Path) -> None:
    tee, events = tee_with_events(tmp_path)
    room, outputs = tee.branch("room"), tee.branch("outputs")
    assert not tee.is_open and tee.last_progress() is None
    await asyncio.wait_for(room.start(), T)
    await asyncio.wait_for(tee.acquire("page-meter:1"), T)
    await asyncio.wait_for(outputs.start(), T)
    assert tee.is_open and tee.users == ["outputs", "page-meter:1", "room"]
    frame = await asyncio.wait_for(room.read(), T)
    assert frame.sample_count == 960
    progress = tee.last_progress()
    assert progress is not None and progress >= tee.opened_at
    await asyncio.wait_for(room.stop(), T)
    await asyncio.wait_for(outputs.stop(), T)
    assert tee.is_open  # the meter still holds it
    await asyncio.wait_for(tee.release("page-meter:1"), T)
    assert not tee.is_open and tee.users == [] and tee.last_progress() is None
    await asyncio.wait_for(tee.release("page-meter:1"), T)  # twice is harmless
    assert [(n, d["open"]) for n, d in events] == [("mic-open", True), ("mic-open", False)]
    assert events[0][1]["users"] == ["room"]
    await asyncio.wait_for(room.start(), T)  # and it opens again
    assert tee.is_open
    await asyncio.wait_for(tee.close(), T)
    assert not tee.is_open and len(events) == 4


async def test_room_use_follows_what_the_room_wants(tmp_path: Path) -> None:
    tee, _ = tee_with_events(tmp_path)
    wanted = {"v": False}
    use = RoomMicUse(tee.branch("room"), lambda: wanted["v"])
    await asyncio.wait_for(use.sync(), T)
    assert not use.open and not tee.is_open
    wanted["v"] = True
    use.changed()  # from a state change: in a task of its own
    await asyncio.wait_for(use.sync(), T)
    assert use.open and tee.is_open and tee.users == ["room"]
    wanted["v"] = False
    use.changed()
    use.changed()
    await asyncio.wait_for(use.close(), T)
    assert not use.open and not tee.is_open


async def test_a_mic_that_cannot_open_leaves_the_room_sending_silence(tmp_path: Path) -> None:
    def missing() -> SimMic:
        raise DeviceNotFound("ALSA capture device 'nope' not found")

    errors: list[tuple[str, dict[str, Any]]] = []
    tee = MicTee(missing)
    use = RoomMicUse(tee.branch("room"), lambda: True, emit=lambda n, d: errors.append((n, d)))
    await asyncio.wait_for(use.sync(), T)
    assert not use.open and not tee.is_open
    assert errors == [("room-mic-error", {"error": "ALSA capture device 'nope' not found"})]
    assert tee.users == []  # a failed start is not a user; the next one tries again
    await asyncio.wait_for(use.sync(), T)
    assert len(errors) == 2
