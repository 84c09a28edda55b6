"""The echo canceller when the speaker rests and starts again.

In a room the speaker stops while nothing is heard (services/room/speaker_use.py), so
its playout reports (the echo canceller's reference) stop for a while and then resume,
stamped on the same monotonic clock. Nothing is played meanwhile, so there is no echo
to cancel: the processor reads zeros for that time, logs nothing, and cancels the echo
again as soon as the speaker plays.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from drivers.audio.base import PcmFrame
from services.audio import AudioProcessor, ProcessingOptions

from .signals import (
    FRAME_S,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    T0,
    Signal,
    db,
    echo_of,
    energy,
    fit,
    room_impulse_response,
    to_pcm,
    white_noise,
)

SECONDS = 16.0
REST = (6.0, 10.0)  # the speaker rests between these times
AHEAD = 2  # playout is reported two frames ahead of the capture at the same time


def erle(echo: Signal, out: np.ndarray, start_s: float, stop_s: float) -> float:
    a, b = int(start_s * SAMPLE_RATE), int(stop_s * SAMPLE_RATE)
    return db(energy(echo[a:b]) / max(energy(out[a:b]), 1.0))


def test_a_rest_of_the_speaker_is_a_gap_in_the_reference_not_an_error(
        far_speech: Signal, caplog: pytest.LogCaptureFixture) -> None:
    n = int(SECONDS * SAMPLE_RATE)
    played = fit(far_speech, n).copy()
    played[int(REST[0] * SAMPLE_RATE):int(REST[1] * SAMPLE_RATE)] = 0.0  # resting
    echo = echo_of(played, room_impulse_response(seed=7), 60)
    mic = to_pcm(echo + white_noise(SECONDS, -70.0, seed=3))
    far16 = to_pcm(played)
    frames = n // FRAME_SAMPLES
    out = np.zeros(frames * FRAME_SAMPLES, dtype=np.int16)

    def resting(k: int) -> bool:
        return REST[0] <= k * FRAME_S < REST[1]

    with caplog.at_level(logging.DEBUG, logger="services.audio"), \
            AudioProcessor(ProcessingOptions(aec=True, noise_suppression=False,
                                             agc=False)) as p:
        def play(k: int) -> None:
            if k < frames and not resting(k):
                chunk = far16[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES].tobytes()
                p.feed_playout(PcmFrame(chunk, T0 + k * FRAME_S, k), T0 + k * FRAME_S)

        for k in range(AHEAD):
            play(k)
        for k in range(frames):
            play(k + AHEAD)
            chunk = mic[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES].tobytes()
            result = p.process(PcmFrame(chunk, T0 + k * FRAME_S, k))
            out[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES] = np.frombuffer(
                result.samples, np.int16)
        stats, bad = p.stats, p.bad_playout
    before = erle(echo, out, 3.0, REST[0])
    after = erle(echo, out, REST[1] + 1.0, SECONDS)
    print(f"ERLE before the rest {before:.1f} dB, after it {after:.1f} dB; {stats}")
    assert bad == 0
    assert stats["reference_jumps"] == 1  # the one gap, followed
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    # The echo is cancelled after the rest as well as before it (the echo path did not
    # change; the filter kept what it had learnt), within a second of playing again.
    assert before >= 15.0
    assert after >= max(15.0, before - 3.0)
