"""The room client's parts on their own (no server): mixer, rate limit, backoff,
error mapping, tracks and generated Janus config."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from drivers.audio.base import FRAME_SAMPLES
from services.audio.opus import OpusDecoder
from services.room.api import NoSuchRoom, RoomError, RoomFull, Unauthorized, WrongPin
from services.room.janus.errors import janus_error
from services.room.janus.jcfg import JanusSettings, RoomSpec, render, write_config
from services.room.mixer import DecodedFeed, RemoteAudioMixer, _Source, to_mono48k
from services.room.ratelimit import MessageLimiter, MessageQueueFull
from services.room.session import reconnect_delay
from services.room.tracks import MicTrack, SwitchableVideoTrack, apply_volume


def tone(freq: float, n: int = FRAME_SAMPLES, amp: int = 8000) -> np.ndarray:
    t = np.arange(n) / 48000
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


class FakeTrack:
    kind = "audio"

    def __init__(self, frames: list[av.AudioFrame], hang: bool = False) -> None:
        self.frames = frames
        self.hang = hang

    async def recv(self) -> av.AudioFrame:
        if self.frames:
            return self.frames.pop(0)
        if self.hang:
            await asyncio.Event().wait()
        raise MediaStreamError


def stereo_frame(samples: np.ndarray) -> av.AudioFrame:
    stereo = np.repeat(samples, 2).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48000
    return frame


async def test_mixer_sums_members_with_gain_and_mute():
    mixer = RemoteAudioMixer(None)
    mixer.add_track("a", FakeTrack([stereo_frame(tone(440))] * 3))
    mixer.add_track("b", FakeTrack([stereo_frame(tone(880))] * 3, hang=True))
    await asyncio.sleep(0.05)
    out = np.frombuffer(mixer.mix_once().samples, dtype=np.int16)
    expected = tone(440).astype(np.int32) + tone(880)
    assert np.max(np.abs(out - expected)) <= 2
    mixer.set_muted("a", True)
    mixer.set_gain("b", 0.5)
    out = np.frombuffer(mixer.mix_once().samples, dtype=np.int16)
    assert np.max(np.abs(out - tone(880) * 0.5)) <= 2
    await mixer.stop()


async def test_a_stalled_stream_never_stalls_the_mix():
    mixer = RemoteAudioMixer(None)
    mixer.add_track("live", FakeTrack([stereo_frame(tone(440))] * 10, hang=True))
    mixer.add_track("stuck", FakeTrack([], hang=True))  # never delivers anything
    await asyncio.sleep(0.05)
    for _ in range(3):
        out = np.frombuffer(mixer.mix_once().samples, dtype=np.int16)
        assert np.max(np.abs(out)) > 5000
    stats = mixer.source_stats()
    assert stats["stuck"]["frames"] == 0
    await mixer.stop()


async def test_mixer_clips_loud_sums_and_reports_levels():
    mixer = RemoteAudioMixer(None)
    assert mixer.mix_once().samples == bytes(FRAME_SAMPLES * 2)  # nobody: silence
    loud = tone(440, amp=30000)
    mixer.add_track("a", FakeTrack([stereo_frame(loud)] * 3, hang=True))
    mixer.add_track("b", FakeTrack([stereo_frame(loud)] * 3, hang=True))
    await asyncio.sleep(0.05)
    mixer.set_gain("b", 2.0)
    out = np.frombuffer(mixer.mix_once().samples, dtype=np.int16)
    assert out[int(np.argmax(loud))] == 32767  # clipped, never wrapped
    assert out[int(np.argmin(loud))] == -32768
    level = mixer.source_stats()["a"]["level_dbfs"]
    assert level is not None and abs(level - (-3.8)) < 0.3  # a sine at 30000/32768
    mixer.set_muted("b", True)
    mixer.master_gain = 0.5
    out = np.frombuffer(mixer.mix_once().samples, dtype=np.int16)
    assert np.max(np.abs(out.astype(np.int32) - loud // 2)) <= 2
    await mixer.stop()


@pytest.mark.parametrize("layout,channels", [("mono", 1), ("stereo", 2), ("5.0", 5)])
@pytest.mark.parametrize("fmt", ["s16", "s16p"])
def test_decoded_frames_become_the_mean_of_their_channels(layout, channels, fmt):
    x = np.random.default_rng(channels).integers(-30000, 30000, (channels, FRAME_SAMPLES),
                                                 dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(x if fmt == "s16p" else x.T.reshape(1, -1),
                                       format=fmt, layout=layout)
    frame.sample_rate = 48000
    out = to_mono48k(frame, _Source("m", DecodedFeed()))
    assert out.dtype == np.int16 and out.shape == (FRAME_SAMPLES,)
    assert np.max(np.abs(out - x.astype(np.int32).mean(axis=0))) <= 1


async def test_rate_limiter_keeps_high_and_merges_low():
    limiter = MessageLimiter(rate=1000, burst=1000, max_low=2)
    for i in range(5):
        limiter.put(f"level {i}", "low", key="level")
    limiter.put("like", "low", key="like")
    limiter.put("poll", "low", key="poll")  # a third key: the oldest low is dropped
    for i in range(3):
        limiter.put(f"chat {i}", "high")
    sent: list[str] = []

    async def send(item: tuple[str, str | None]) -> None:
        sent.append(item[0])

    task = asyncio.create_task(limiter.run(send))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sent == ["chat 0", "chat 1", "chat 2", "like", "poll"]
    assert limiter.merged == 4 and limiter.dropped == 1
    small = MessageLimiter(max_high=1)
    small.put("a")
    with pytest.raises(MessageQueueFull):
        small.put("b")


async def test_rate_limiter_paces_sends():
    limiter = MessageLimiter(rate=50, burst=2)
    stamps: list[float] = []
    loop = asyncio.get_running_loop()
    all_sent = asyncio.Event()

    async def send(item: tuple[str, str | None]) -> None:
        stamps.append(loop.time())
        if len(stamps) == 6:
            all_sent.set()

    for i in range(6):
        limiter.put(str(i))
    task = asyncio.create_task(limiter.run(send))
    await asyncio.wait_for(all_sent.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert stamps[-1] - stamps[0] >= 3 / 50 * 0.9  # 2 at once, then 50 per second


def test_reconnect_backoff_has_full_jitter_and_bounds():
    for _ in range(200):
        assert 0 <= reconnect_delay(0) <= 0.3
        assert 0 <= reconnect_delay(30) <= 10.0
    assert max(reconnect_delay(10) for _ in range(200)) > 5.0


@pytest.mark.parametrize("code,reason,plugin,cls", [
    (433, "Unauthorized (wrong pin)", True, WrongPin),
    (433, "Unauthorized (wrong secret)", True, Unauthorized),
    (426, "No such room (5)", True, NoSuchRoom),
    (485, "No such room (5)", True, NoSuchRoom),
    (489, "Unauthorized (wrong pin)", True, WrongPin),
    (432, "Maximum number of publishers (3) reached", True, RoomFull),
    (403, "Unauthorized request (wrong or missing secret/token)", False, Unauthorized),
])
def test_janus_errors_map_to_room_errors(code, reason, plugin, cls):
    err = janus_error(code, reason, plugin=plugin)
    assert type(err) is cls
    assert str(code) in str(err)


def test_unknown_janus_error_keeps_its_code():
    err = janus_error(499, "boom", plugin=True)
    assert type(err) is RoomError and err.code == "JANUS_499"


def test_generated_janus_config(tmp_path):
    path = write_config(tmp_path, JanusSettings(listen_ip="10.0.0.1", port=8200,
                                                interface="eth1", api_secret="s",
                                                rooms=(RoomSpec(5, pin="1", secret="2"),)))
    text = path.read_text()
    assert 'ice_enforce_list = "eth1"' in text and 'api_secret = "s"' in text
    ws = (tmp_path / "janus.transport.websockets.jcfg").read_text()
    assert 'ws_ip = "10.0.0.1"' in ws and "ws_port = 8200" in ws
    vr = (tmp_path / "janus.plugin.videoroom.jcfg").read_text()
    assert "room-5: {" in vr and "audiolevel_event = true" in vr and 'pin = "1"' in vr
    tr = (tmp_path / "janus.plugin.textroom.jcfg").read_text()
    assert "room-5: {" in tr and "history = 20" in tr  # late joiners get the last messages
    assert sorted(p.name for p in (tmp_path / "transports").iterdir()) == [
        "libjanus_websockets.so"]
    assert render({"a": {"x": [1, "b"], "skip": None}}) == 'a: {\n\tx = [1, "b"]\n}\n'


class Gate:
    def __init__(self) -> None:
        self.value = (True, True, 100)

    def __call__(self) -> tuple[bool, bool, int]:
        return self.value


class ToneMic:
    def __init__(self) -> None:
        self.reads = 0
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def read(self):
        from drivers.audio.base import PcmFrame

        self.reads += 1
        await asyncio.sleep(0)
        return PcmFrame(tone(440, amp=20000).tobytes(), 0.0, self.reads)

    def set_gain(self, percent: int) -> None: ...

    @property
    def stats(self) -> dict[str, int]:
        return {"frames": self.reads}

    async def stop(self) -> None: ...


async def test_mic_track_applies_mute_volume_and_listener():
    mic, gate = ToneMic(), Gate()
    track = MicTrack(mic, gate)
    decoder = OpusDecoder()

    async def peak(frames: int = 6) -> int:
        # Opus looks ahead a few ms: the last frames of a run show its level alone
        pcm = [decoder.decode(bytes(await asyncio.wait_for(track.recv(), 2)))
               for _ in range(frames)]
        return int(np.abs(np.concatenate(pcm[-2:])).max())

    loud = await peak()
    gate.value = (True, True, 50)
    half = await peak()
    assert abs(half - loud / 2) < 0.1 * loud
    gate.value = (True, False, 100)
    assert await peak() < 50
    reads = mic.reads
    gate.value = (False, True, 100)  # listener: silence, mic untouched
    assert await peak() < 50 and mic.reads == reads
    packet = await asyncio.wait_for(track.recv(), 2)
    assert packet.pts == 24 * FRAME_SAMPLES  # the 25th frame, timestamps continuous
    assert apply_volume(b"\x10\x00", 0) == b"\x00\x00"
    track.stop()


async def test_mic_track_mutes_the_frame_captured_while_muting():
    mic = ToneMic()
    gate = Gate()

    async def read_while_muting():
        gate.value = (True, False, 100)  # mute pressed while the frame is being captured
        return await ToneMic.read(mic)

    mic.read = read_while_muting  # type: ignore[method-assign]
    track = MicTrack(mic, gate)
    packet = await asyncio.wait_for(track.recv(), 2)
    assert mic.reads == 1 and track.last_audio_level == 127  # silence was encoded
    assert np.abs(OpusDecoder().decode(bytes(packet))).max() < 50
    track.stop()


class CountingVideo(MediaStreamTrack):
    kind = "video"
    made = 0

    def __init__(self) -> None:
        super().__init__()
        CountingVideo.made += 1
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await asyncio.sleep(0.01)
        frame = av.VideoFrame(16, 16, "yuv420p")
        frame.pts = self.n * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        return frame


async def test_switchable_video_closes_and_reopens_with_monotonic_time():
    CountingVideo.made = 0
    track = SwitchableVideoTrack(CountingVideo)
    first = [(await track.recv()).pts for _ in range(3)]
    track.switch(False)
    pending = asyncio.create_task(track.recv())
    await asyncio.sleep(0.05)
    assert not pending.done()  # nothing is sent while off
    track.switch(True)
    after = await asyncio.wait_for(pending, 2)
    assert CountingVideo.made == 2
    assert after.pts > first[-1]
    assert first == sorted(first)
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(track.recv(), 2)


async def test_audio_packets_go_from_the_receiver_to_the_members_jitter_buffer():
    from aiortc.jitterbuffer import JitterBuffer
    from aiortc.rtp import RtpPacket

    from services.audio.opus import OpusEncoder
    from services.room.rtc import PacketTap, packet_tap, tap_audio_packets

    class Receiver:  # where aiortc keeps its jitter buffer and the track
        def __init__(self, video: bool) -> None:
            self._RTCRtpReceiver__jitter_buffer = JitterBuffer(
                capacity=16 if not video else 128, prefetch=4, is_video=video)
            self.track = FakeTrack([], hang=True)

    audio, video = Receiver(False), Receiver(True)
    tap = tap_audio_packets(audio)
    assert tap is not None and tap_audio_packets(audio) is tap  # idempotent
    assert tap_audio_packets(video) is None and packet_tap(video.track) is None
    assert isinstance(audio._RTCRtpReceiver__jitter_buffer, PacketTap)
    assert packet_tap(audio.track) is tap

    with OpusEncoder(bitrate=32000) as enc:
        payloads = [enc.encode(tone(440)) for _ in range(10)]

    def packet(i: int, data: bytes) -> RtpPacket:
        p = RtpPacket(sequence_number=(65534 + i) & 0xFFFF, timestamp=(2**32 - 1920 + i * 960)
                      & 0xFFFFFFFF)
        p._data = data  # type: ignore[attr-defined]  # what aiortc's depayloader sets
        return p

    assert tap.add(packet(0, payloads[0])) == (False, None)  # no mixer yet: dropped
    assert tap.unclaimed == 1
    mixer = RemoteAudioMixer(None)
    mixer.add_track("m", audio.track)
    for i in (0, 1, 3, 2, 4, 5):  # both wrap, and 2/3 come swapped
        assert tap.add(packet(i, payloads[i])) == (False, None)  # never to aiortc
    tap.add(packet(6, b""))  # padding only
    await asyncio.sleep(0.03)  # past the target delay
    played = [mixer.pull(FRAME_SAMPLES) for _ in range(6)]
    assert all(len(f.samples) == 2 * FRAME_SAMPLES for f in played)
    loudest = [int(np.abs(np.frombuffer(f.samples, np.int16)).max()) for f in played]
    assert min(loudest[:5]) > 4000  # the tone: decoded, in order
    stats = mixer.source_stats()["m"]
    assert stats["packets"] == 6 and stats["lost"] == stats["late"] == 0
    assert {"target_ms", "delay_ms", "concealed_pct", "stretched_pct", "fec"} <= set(stats)
    await mixer.remove("m")
    assert tap.sink is None


def test_the_local_janus_keeps_the_configured_history(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from device.config import Config
    from device.settings import local_sfu
    from services.room import create_local_sfu

    for history in (7, 0):
        config = Config().replace({"room": {"room": 9, "history": history}})
        sfu = create_local_sfu(local_sfu(config), tmp_path / str(history))
        write_config(sfu.confdir, sfu.settings)
        text = (sfu.confdir / "janus.plugin.textroom.jcfg").read_text()
        assert "room-9: {" in text
        assert ("history = 7" in text) if history else ("history" not in text)


def test_empty_display_name_means_the_host_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socket

    from device.config import Config
    from device.settings import room_session
    from services.room import create_session

    session = create_session(room_session(Config()), tmp_path, sim=True)
    assert Config().room.display_name == ""
    assert session.settings.display == socket.gethostname()
    kitchen = Config().replace({"room": {"display_name": "Kitchen"}})
    named = create_session(room_session(kitchen), tmp_path, sim=True)
    assert named.settings.display == "Kitchen"


async def test_a_track_moved_to_another_member_keeps_its_packets_flowing():
    from aiortc.jitterbuffer import JitterBuffer

    from services.room.rtc import tap_audio_packets

    class Receiver:
        def __init__(self) -> None:
            self._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=4)
            self.track = FakeTrack([], hang=True)

    receiver = Receiver()
    tap = tap_audio_packets(receiver)
    assert tap is not None
    mixer = RemoteAudioMixer(None)
    mixer.add_track("a", receiver.track)
    # as the videoroom rebinds a mid: the old owner's removal runs after the new add
    removal = asyncio.create_task(mixer.remove("a"))
    mixer.add_track("b", receiver.track)
    await asyncio.wait_for(removal, 2)
    assert mixer.keys() == ["b"] and tap.sink is not None
    tap.sink(1, 960, b"\xfc\xff\xfe", 0.0)  # reaches b's buffer
    assert mixer.source_stats()["b"]["packets"] == 1
    await mixer.stop()
    assert tap.sink is None
