"""The room's speaker plays only while there is something to hear: the mixer's voices
and the speaker playbacks start it, it rests a hold after the last of them, and a device
that fails to open is tried again at the next voice.

In-process, with the real mixer, the real sim speaker (its thread and WAV) and aiortc's
own audio track as a member's voice; no room server is needed for this part (the whole
appliance in a room on a real Janus: test_speaker_rest.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.audio.sim import SimSpeaker
from services.room.mixer import RemoteAudioMixer
from services.room.speaker_use import RoomSpeakerUse

T = 10.0
HOLD = 0.4


def speaker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sim-speaker"]


async def until(check: Callable[[], bool], what: str, timeout: float = 3.0) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, what
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


class Room:
    """A mixer and the speaker use wired as the room session wires them."""

    def __init__(self, speaker: SimSpeaker) -> None:
        self.inside = True
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.speaker = speaker
        self.mixer = RemoteAudioMixer(speaker)
        self.use = RoomSpeakerUse(speaker, lambda: self.inside,
                                  lambda name, data: self.events.append((name, data)),
                                  hold_s=HOLD)
        self.mixer.on_sources = self.use.voices
        self.mixer.start()

    def states(self) -> list[str]:
        return [d["new"] for n, d in self.events if n == "room-speaker"]

    async def voice(self, key: str) -> None:
        from aiortc.mediastreams import AudioStreamTrack

        self.mixer.add_track(key, AudioStreamTrack())

    async def close(self) -> None:
        self.inside = False
        await asyncio.wait_for(self.mixer.stop(), T)
        await asyncio.wait_for(self.use.stop(), T)
        await asyncio.wait_for(self.use.close(), T)
        await asyncio.wait_for(self.speaker.stop(), T)


async def test_voices_start_the_speaker_and_it_rests_a_hold_after_the_last(
        tmp_path: Path) -> None:
    wav = tmp_path / "speaker.wav"
    room = Room(SimSpeaker(wav))
    try:
        room.use.changed()  # entered the room: nothing to hear
        await until(lambda: room.use.state == "resting", "resting in the room")
        await asyncio.sleep(0.3)
        assert speaker_threads() == [] and not wav.exists()

        await room.voice("m1")
        took = await until(lambda: room.use.playing and speaker_threads(), "the speaker")
        assert took < 0.5, took
        await until(lambda: room.speaker.stats["slots"] > 10, "the speaker to play")
        assert room.use.state == "playing"

        # The voice goes and comes back within the hold: the device is not reopened.
        thread = speaker_threads()[0]
        await asyncio.wait_for(room.mixer.remove("m1"), T)
        await asyncio.sleep(HOLD / 3)
        await room.voice("m1")
        await asyncio.sleep(HOLD * 1.5)
        assert speaker_threads() == [thread] and room.states() == ["resting", "playing"]

        # Gone for good: silence for the hold, then the speaker rests.
        await asyncio.wait_for(room.mixer.remove("m1"), T)
        gone = time.monotonic()
        await until(lambda: room.use.state == "resting", "the speaker to rest")
        rested = time.monotonic() - gone
        assert HOLD * 0.9 <= rested <= HOLD + 0.5, rested
        await until(lambda: not speaker_threads(), "the speaker thread to end")
        size = wav.stat().st_size
        await asyncio.sleep(0.3)
        assert wav.stat().st_size == size  # nothing is written while it rests

        # Leaving stops it at once, without the hold.
        await room.voice("m2")
        await until(lambda: room.use.playing, "playing again")
        room.inside = False
        await asyncio.wait_for(room.mixer.stop(), T)
        await asyncio.wait_for(room.use.stop(), T)
        assert room.use.state == "idle" and not room.use.playing
        await until(lambda: not speaker_threads(), "the thread to end at leave", 1.0)
        assert room.states() == ["resting", "playing", "resting", "playing", "idle"]
    finally:
        await room.close()


async def test_a_speaker_playback_alone_plays_and_the_speaker_rests_after_it(
        tmp_path: Path) -> None:
    room = Room(SimSpeaker(tmp_path / "speaker.wav"))
    try:
        room.use.changed()
        await until(lambda: room.use.state == "resting", "resting")
        room.use.want("playbacks", True)
        await until(lambda: room.use.playing and speaker_threads(), "the speaker")
        room.use.want("playbacks", False)
        await until(lambda: room.use.state == "resting", "resting after the playback")
        await until(lambda: not speaker_threads(), "the thread to end")
    finally:
        await room.close()


async def test_a_speaker_that_fails_to_open_is_tried_again_at_the_next_voice(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the speaker's directory should be")
    room = Room(SimSpeaker(blocker / "speaker.wav"))
    try:
        room.use.changed()
        with caplog.at_level(logging.ERROR, logger="services.room.speaker_use"):
            await room.voice("m1")
            await until(lambda: room.use.state == "failed", "the failure")
        assert "room speaker failed to open" in caplog.text and "not-a-dir" in caplog.text
        assert not room.use.playing and speaker_threads() == []
        failed = [d for n, d in room.events if n == "room-speaker" and d["new"] == "failed"]
        assert failed and "not-a-dir" in failed[0]["error"]
        # The room goes on; the device comes back, and the next voice opens it.
        blocker.unlink()
        await room.voice("m2")
        await until(lambda: room.use.playing, "the retry")
        assert room.use.state == "playing" and speaker_threads()
    finally:
        await room.close()
