"""The playback manager on real decoders: PyAV over files and HTTP, espeak-ng for text."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from drivers.audio.base import PcmFrame
from drivers.audio.sim import SimMic
from services.audio.talk import LocalTalkDetector, TalkSettings, threshold_dbfs
from services.media.audio import MicTee
from services.playback.manager import PlaybackManager, PlaybackSettings
from services.playback.source import PlaybackError
from services.playback.speaker import PlaybackSpeaker
from tests.harness.polling import wait_until

T = 20.0  # every await below is bounded by this


def write_tone(path: Path, freq: float, seconds: float, rate: int = 48_000,
               amplitude: float = 0.3) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (amplitude * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def dominant(samples: np.ndarray[Any, Any]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / 48_000)
    return float(freqs[int(np.argmax(spectrum))])


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        self.events.append((name, data))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [d for n, d in self.events if n == name]


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[tuple[PlaybackManager, Recorder]]:
    events = Recorder()
    m = PlaybackManager(PlaybackSettings(tmp_path, tmp_path / "tts"), emit=events)
    yield m, events
    await asyncio.wait_for(m.close(), T)


async def drain_room(m: PlaybackManager, blocks: int) -> np.ndarray[Any, Any]:
    """What ``blocks`` 20 ms frames of silence from the mic become in the room."""
    out = []
    for _ in range(blocks):
        out.append(np.frombuffer(m.room_mix(bytes(1920)), np.int16))
        await asyncio.sleep(0.002)  # the decoder thread keeps up
    return np.concatenate(out)


@pytest.mark.parametrize("fmt", ["wav", "ogg", "flac", "mp3"])
async def test_each_file_type_plays_into_the_room_and_ends(manager, tmp_path, fmt):
    m, events = manager
    wav = write_tone(tmp_path / "tone.wav", 700, 1.0, rate=44_100)
    name = "tone.wav"
    if fmt != "wav":
        assert shutil.which("ffmpeg"), "ffmpeg (Debian) is needed to make the test files"
        name = f"tone.{fmt}"
        await asyncio.to_thread(subprocess.run, ["ffmpeg", "-loglevel", "error", "-y", "-i",
                                                 str(wav), str(tmp_path / name)],
                                check=True, timeout=30)
    info = await asyncio.wait_for(m.play(file=name), T)
    assert info["kind"] == "file" and info["destination"] == "room"
    assert m.speaker_mix(960) is None  # a room playback is not on the speaker
    sent = await drain_room(m, 60)
    assert abs(dominant(sent[4800:40000]) - 700) < 10
    await wait_until(lambda: bool(events.named("playback-ended")), T)
    ended = events.named("playback-ended")[0]
    assert ended["id"] == info["id"] and ended["reason"] == "finished", ended
    assert 0.9 <= ended["position"] <= 1.2
    assert m.list() == []
    assert m.room_mix(bytes(1920)) == bytes(1920)  # nothing mixed any more


async def test_a_url_plays_on_the_speaker(manager, tmp_path):
    m, _ = manager
    sound = write_tone(tmp_path / "served.wav", 900, 2.0)

    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(sound)

    app = web.Application()
    app.router.add_get("/bell.wav", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        info = await asyncio.wait_for(
            m.play(url=f"http://127.0.0.1:{port}/bell.wav", destination="speaker",
                   volume=50), T)
        assert info["kind"] == "url" and info["volume"] == 50
        await asyncio.sleep(0.3)
        blocks = [m.speaker_mix(960) for _ in range(20)]
        played = np.concatenate([b for b in blocks if b is not None])
        assert len(played) == 20 * 960
        assert abs(dominant(played) - 900) < 10
        # at half volume: 0.3 * 0.5 of full scale
        assert 0.12 < np.abs(played).max() / 32767 < 0.18
        assert m.room_mix(bytes(1920)) == bytes(1920)  # not into the room
        with pytest.raises(PlaybackError) as refused:
            await asyncio.wait_for(m.play(url=f"http://127.0.0.1:{port}/missing.wav"), T)
        assert refused.value.code == "PLAYBACK_ERROR"
    finally:
        await runner.cleanup()


async def test_text_is_spoken_by_espeak_ng(manager, tmp_path):
    m, events = manager
    info = await asyncio.wait_for(m.play(text="The meeting starts in five minutes",
                                         destination="both"), T)
    assert info["kind"] == "text"
    assert [p.suffix for p in (tmp_path / "tts").iterdir()] == [".wav"]  # rendered speech
    await asyncio.sleep(0.3)
    speech = [m.speaker_mix(960) for _ in range(50)]
    room = await drain_room(m, 50)
    loud = np.concatenate([s for s in speech if s is not None]).astype(np.float64)
    assert np.sqrt(np.mean(loud ** 2)) > 500  # speech, not silence
    assert np.sqrt(np.mean(room.astype(np.float64) ** 2)) > 500  # the same into the room
    await asyncio.wait_for(m.control(info["id"], "stop"), T)
    assert events.named("playback-ended")[0]["reason"] == "stopped"
    assert list((tmp_path / "tts").iterdir()) == []  # the rendered speech is removed


async def test_pause_resume_volume_and_several_at_once(manager, tmp_path):
    m, events = manager
    write_tone(tmp_path / "low.wav", 500, 3.0, amplitude=0.2)
    write_tone(tmp_path / "high.wav", 1500, 3.0, amplitude=0.2)
    low = await asyncio.wait_for(m.play(file="low.wav"), T)
    high = await asyncio.wait_for(m.play(file="high.wav"), T)
    await asyncio.sleep(0.3)
    both = await drain_room(m, 10)
    spectrum = np.abs(np.fft.rfft(both.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(both), 1 / 48_000)
    peaks = {round(float(f), -2) for f in freqs[np.argsort(spectrum)[-4:]]}
    assert {500.0, 1500.0} <= peaks, peaks
    paused = await asyncio.wait_for(m.control(low["id"], "pause"), T)
    assert paused["state"] == "paused"
    position = m.get(low["id"]).to_dict()["position"]
    only_high = await drain_room(m, 10)
    assert abs(dominant(only_high) - 1500) < 10
    assert m.get(low["id"]).to_dict()["position"] == position  # nothing consumed
    await asyncio.wait_for(m.control(low["id"], "resume"), T)
    await asyncio.wait_for(m.control(high["id"], "volume", 0), T)
    only_low = await drain_room(m, 10)
    assert abs(dominant(only_low) - 500) < 10
    updates = [(e["id"], e["state"], e["volume"]) for e in events.named("playback-updated")]
    assert updates == [(low["id"], "paused", 100), (low["id"], "playing", 100),
                       (high["id"], "playing", 0)]
    with pytest.raises(PlaybackError) as missing:
        await m.control("pb99", "stop")
    assert missing.value.code == "NO_SUCH_PLAYBACK"


async def test_bad_requests_are_refused_with_a_reason(manager, tmp_path):
    m, _ = manager
    (tmp_path / "notes.wav").write_text("not a sound")
    write_tone(tmp_path / "ok.wav", 440, 5.0)
    cases = [({"file": "../outside.wav"}, "BAD_ARGUMENT"),
             ({"file": "/etc/hostname"}, "BAD_ARGUMENT"),
             ({"file": "missing.mp3"}, "FILE_NOT_FOUND"),
             ({"file": "edgeroom.toml"}, "BAD_ARGUMENT"),
             ({"file": "notes.wav"}, "PLAYBACK_ERROR"),
             ({"url": "ftp://example.invalid/a.mp3"}, "BAD_ARGUMENT"),
             ({}, "BAD_ARGUMENT")]
    for args, code in cases:
        with pytest.raises(PlaybackError) as refused:
            await asyncio.wait_for(m.play(**args), T)
        assert refused.value.code == code, (args, refused.value)
    for _ in range(m.settings.max_playbacks):
        await asyncio.wait_for(m.play(file="ok.wav"), T)
    with pytest.raises(PlaybackError) as busy:
        await asyncio.wait_for(m.play(file="ok.wav"), T)
    assert busy.value.code == "BUSY"
    m.stop_all("left")
    assert m.list() == []


class FakeSink:
    """Just the pull side of a speaker, for the wrapper."""

    def __init__(self) -> None:
        self.source: Any = None
        self.volume = 0

    def set_source(self, source: Any) -> None:
        self.source = source

    def set_volume(self, percent: int) -> None:
        self.volume = percent


async def test_the_speaker_wrapper_adds_playbacks_to_the_room_mix(manager, tmp_path):
    m, _ = manager
    sink = FakeSink()
    speaker = PlaybackSpeaker(sink, m.speaker_mix)  # type: ignore[arg-type]
    voice = np.full(960, 1000, np.int16)
    speaker.set_source(lambda count, at: PcmFrame(voice[:count].tobytes(), at))
    assert sink.source(960, 0.0).samples == voice.tobytes()  # no playback: as it was
    write_tone(tmp_path / "t.wav", 800, 1.0)
    await asyncio.wait_for(m.play(file="t.wav", destination="speaker"), T)
    await asyncio.sleep(0.2)
    mixed = np.frombuffer(sink.source(960, 0.0).samples, np.int16)
    assert abs(float(mixed.mean()) - 1000) < 100 and mixed.max() > 5000
    speaker.set_volume(30)
    assert sink.volume == 30
    speaker.set_source(None)
    assert sink.source is None


def test_the_talking_threshold_follows_the_sensitivity() -> None:
    events = Recorder()
    level = {"dbfs": -45.0}
    detector = LocalTalkDetector(TalkSettings(sensitivity=50, hangover=0.3),
                                 lambda: level["dbfs"], lambda: True, emit=events)
    assert threshold_dbfs(0) == -10.0 and threshold_dbfs(100) == -70.0
    assert detector.threshold == -40.0
    assert detector.step(0.0) is False  # -45 dBFS is below -40
    detector.set_sensitivity(60)  # -46 dBFS
    assert detector.step(0.05) is True
    level["dbfs"] = -60.0
    assert detector.step(0.2) is True  # the hang-over
    assert detector.step(0.4) is False
    talks = [(d["id"], d["talking"]) for d in events.named("talking")]
    assert talks == [("local", True), ("local", False)]
    assert events.named("sensitivity") == [{"sensitivity": 60, "threshold_dbfs": -46.0}]
    with pytest.raises(ValueError):
        detector.set_sensitivity(101)



async def test_the_talking_detector_sleeps_while_the_mic_cannot_talk() -> None:
    events = Recorder()
    state = {"active": False, "looks": 0}

    def active() -> bool:
        state["looks"] += 1
        return bool(state["active"])

    detector = LocalTalkDetector(TalkSettings(sensitivity=50, interval=0.05, idle_interval=1.0),
                                 lambda: -20.0, active, emit=events)
    task = asyncio.create_task(detector.run())
    try:
        await asyncio.sleep(0.6)
        assert state["looks"] == 1  # out of a room: one look, then asleep (not 12)
        state["active"] = True
        detector.wake()  # the room's state changed, say
        await asyncio.sleep(0.02)
        assert detector.talking  # at once, not after the idle interval
        looks = state["looks"]
        await asyncio.sleep(0.5)
        assert 3 <= state["looks"] - looks <= 11  # every 50 ms while it can talk
        state["active"] = False  # looked at within one interval
        await asyncio.sleep(0.08)
        assert not detector.talking
        looks = state["looks"]
        await asyncio.sleep(0.5)
        assert state["looks"] - looks <= 1
        await asyncio.sleep(1.0)  # the idle interval still looks, in case a wake is missed
        assert state["looks"] - looks >= 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [d["talking"] for d in events.named("talking")] == [True, False]


async def test_the_talking_detector_looks_as_the_mics_frames_come(tmp_path, caplog) -> None:
    """In a room the detector looks at the level as the real mic tee's frames arrive,
    and its own timer wakes only every ``fed_interval``; when the frames stop it looks
    by its timer again."""
    events = Recorder()
    mic = SimMic("tone:440", state_dir=tmp_path)
    tee = MicTee(lambda: mic)
    reads = {"timer": 0}

    def level() -> float:  # what the detector's own timer reads
        reads["timer"] += 1
        return tee.level_dbfs

    def broken(level: float, at: float) -> None:
        raise RuntimeError("a listener that fails")

    tee.add_level_listener(broken)  # logged once; the detector still gets every frame
    detector = LocalTalkDetector(TalkSettings(sensitivity=50, interval=0.05, fed_interval=0.5,
                                              hangover=0.2),
                                 level, lambda: True, emit=events)
    tee.add_level_listener(detector.on_level)
    branch = tee.branch("room")
    await asyncio.wait_for(branch.start(), T)
    task = asyncio.create_task(detector.run())
    try:
        await wait_until(lambda: detector.talking, T)
        reads["timer"] = 0
        frames = tee.frames
        await asyncio.sleep(1.2)
        assert tee.frames - frames >= 40  # the frames came (and were read by the branch)
        assert reads["timer"] <= 3  # every 0.5 s, not every 50 ms (24)
        assert detector.talking
        mic.set_gain(0)  # silence: the frames end the talking after the hang-over
        await wait_until(lambda: not detector.talking, T)
        mic.set_gain(100)
        await wait_until(lambda: detector.talking, T)
        await asyncio.wait_for(branch.stop(), T)  # the mic closes: no frames any more
        assert not tee.is_open
        await wait_until(lambda: not detector.talking, T)
        reads["timer"] = 0
        await asyncio.sleep(1.0)
        assert reads["timer"] >= 8  # no frames: its own timer looks every 50 ms again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await tee.close()
    assert sum("level listener" in r.getMessage() for r in caplog.records) == 1
    talks = [d["talking"] for d in events.named("talking")]
    assert talks == [True, False, True, False]
