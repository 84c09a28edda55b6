"""Digital silence (a muted mic, a listener, volume 0) is not encoded past its first
100 ms: the packet of the last silent frame encoded goes out again. The sound after it
decodes as well as when every frame is encoded, and a lost first packet of it is still
rebuilt from FEC.

Every packet is decoded with libopus (services.audio.opus); the mic track is the room's.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE
from services.audio.opus import OpusDecoder
from services.room.opus_send import (
    DTX_UPDATE_MS,
    SILENCE_AFTER_MS,
    OpusSendEncoder,
    OpusSendSettings,
)
from services.room.tracks import MicTrack
from tests.room.test_opus_send import Gate, ScriptedMic, packets, rms_dbfs, tone

#: How much later the decoded voice lines up with the input (libopus, VoIP, 48 kHz;
#: measured by cross-correlation)
DELAY = 307


def voice(seconds: float) -> np.ndarray:
    """A voiced glide with a syllable envelope: speech-like, so SILK carries it."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(170 + 50 * np.sin(2 * np.pi * 0.7 * t)) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    x = x * (0.2 + 0.8 * np.abs(np.sin(2 * np.pi * 3 * t)))
    return (x / np.max(np.abs(x)) * 12000).astype(np.int16)


def snr_db(sent: np.ndarray, heard: np.ndarray) -> float:
    sent = sent.astype(np.float64)
    noise = sent - heard.astype(np.float64)
    return float(10 * np.log10(np.sum(sent ** 2) / np.sum(noise ** 2)))


class CountingEncoder:
    """The real libopus encoder, counting the frames it is given."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.frames = 0

    def encode(self, pcm: np.ndarray) -> bytes:
        self.frames += 1
        return self.inner.encode(pcm)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


WIND_DOWN = SILENCE_AFTER_MS // 20  # silent frames encoded before the held packet


def counted(sender: OpusSendEncoder) -> CountingEncoder:
    counting = CountingEncoder(sender._encoder)
    sender._encoder = counting  # type: ignore[assignment]
    return counting


def decoded(payloads: list[bytes]) -> np.ndarray:
    decoder = OpusDecoder()
    return np.concatenate([decoder.decode(p) for p in payloads])[DELAY:]


def test_digital_silence_is_not_encoded_and_the_sound_after_it_is_as_good() -> None:
    speech = voice(1.0)
    signal = np.concatenate([speech, np.zeros(SAMPLE_RATE, np.int16), speech])
    sender = OpusSendEncoder()
    counting = counted(sender)
    got = list(sender.encode(signal.tobytes()))
    frames = len(signal) // FRAME_SAMPLES
    assert [p.pts for p in got] == [i * FRAME_SAMPLES for i in range(frames)]

    silent = range(50, 100)  # the second of zeros, in frames
    held = got[50 + WIND_DOWN - 1].data
    assert [p.data for p in got[50 + WIND_DOWN:100]] == [held] * (50 - WIND_DOWN)
    assert got[100].data != held
    assert all(got[i].level == 127 for i in silent)
    assert counting.frames == frames - (50 - WIND_DOWN)
    assert sender.stats["silence_packets"] == 50 - WIND_DOWN

    reference = list(OpusSendEncoder(skip_silence=False).encode(signal.tobytes()))
    heard, ref = decoded([p.data for p in got]), decoded([p.data for p in reference])
    quiet = slice(SAMPLE_RATE + 10 * FRAME_SAMPLES, 2 * SAMPLE_RATE - FRAME_SAMPLES)
    assert np.abs(heard[quiet]).max() <= 2
    after = slice(2 * SAMPLE_RATE, 2 * SAMPLE_RATE + 5 * FRAME_SAMPLES)
    first = snr_db(signal[after], heard[after])
    assert first > 5.0
    assert first > snr_db(signal[after], ref[after]) - 0.5
    whole = slice(2 * SAMPLE_RATE, len(heard))
    assert snr_db(signal[whole], heard[whole]) > snr_db(signal[whole], ref[whole]) - 0.5


def test_a_lost_first_packet_after_the_silence_is_rebuilt_from_fec() -> None:
    onset = np.concatenate([np.zeros(SAMPLE_RATE, np.int16), tone(seconds=0.5, amp=12000)])
    sender = OpusSendEncoder()
    sender.set_expected_loss(10)
    payloads = [p.data for p in sender.encode(onset.tobytes())]
    assert sender.stats["silence_packets"] == 50 - WIND_DOWN
    decoder = OpusDecoder()
    for payload in payloads[:50]:
        decoder.decode(payload)
    rebuilt = decoder.decode_fec(payloads[51], FRAME_SAMPLES)  # packet 50 lost
    assert rms_dbfs(rebuilt) > rms_dbfs(onset[-FRAME_SAMPLES:]) - 6.0


def test_ten_ms_packets_hold_after_the_same_100_ms() -> None:
    sender = OpusSendEncoder(OpusSendSettings(frame_ms=10))
    counting = counted(sender)
    got = list(sender.encode(np.zeros(SAMPLE_RATE // 2, np.int16).tobytes()))
    assert len(got) == 50
    wind_down = SILENCE_AFTER_MS // 10
    assert [p.data for p in got[wind_down:]] == [got[wind_down - 1].data] * 40
    assert counting.frames == wind_down


def test_with_dtx_silence_is_encoded_only_for_the_updates() -> None:
    sender = OpusSendEncoder(OpusSendSettings(dtx=True))
    counting = counted(sender)
    got = list(sender.encode(np.zeros(3 * SAMPLE_RATE, np.int16).tobytes()))
    every = DTX_UPDATE_MS // 20
    assert counting.frames == WIND_DOWN + (150 - WIND_DOWN) // every
    assert sender.stats["dtx_skipped"] + sender.stats["packets"] == 150
    assert sender.stats["silence_packets"] == 0
    late = [p.pts // FRAME_SAMPLES for p in got if p.pts // FRAME_SAMPLES >= WIND_DOWN]
    assert all((n + 1 - WIND_DOWN) % every == 0 for n in late)  # frame n: silent n+1


def test_without_skipping_every_frame_is_encoded() -> None:
    sender = OpusSendEncoder(skip_silence=False)
    counting = counted(sender)
    got = list(sender.encode(np.zeros(SAMPLE_RATE, np.int16).tobytes()))
    assert len(got) == 50 == counting.frames
    assert sender.stats["silence_packets"] == 0


async def test_a_muted_mic_track_sends_held_packets_and_comes_back() -> None:
    gate = Gate()
    track = MicTrack(ScriptedMic(tone()), gate)
    decoder = OpusDecoder()
    first = [decoder.decode(bytes(p)) for p in await packets(track, 25)]
    gate.value = (True, False, 100)  # muted: the frames are zeros
    muted = [bytes(p) for p in await packets(track, 25)]
    assert muted[WIND_DOWN:] == [muted[WIND_DOWN - 1]] * (25 - WIND_DOWN)
    assert track.last_audio_level == 127
    assert np.abs(np.concatenate([decoder.decode(p) for p in muted])[-4800:]).max() <= 2
    gate.value = (True, True, 100)
    back = [decoder.decode(bytes(p)) for p in await packets(track, 25)]
    assert rms_dbfs(np.concatenate(back[10:])) == pytest.approx(
        rms_dbfs(np.concatenate(first[10:])), abs=0.5)
    assert track.encoder.stats["silence_packets"] == 25 - WIND_DOWN
    track.stop()
    await asyncio.sleep(0)
