"""Echo cancellation on a simulated echo path: speech through a room, 20-120 ms late."""

from __future__ import annotations

import numpy as np
import pytest

from services.audio import AudioProcessor, ProcessingOptions

from .signals import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Signal,
    db,
    echo_of,
    energy,
    fit,
    frame_levels,
    room_impulse_response,
    run,
)

CONVERGE_S = 2.0
SECONDS = 12.0


def erle(echo: Signal, out: np.ndarray) -> float:
    """Echo return loss enhancement after the convergence time, dB."""
    start = int(CONVERGE_S * SAMPLE_RATE)
    n = len(out)
    return db(energy(echo[start:n]) / max(energy(out[start:n]), 1.0))


@pytest.mark.parametrize("delay_ms", [20, 60, 120])
def test_echo_reduced_by_20_db_after_convergence(far_speech: Signal, delay_ms: int) -> None:
    far = fit(far_speech, int(SECONDS * SAMPLE_RATE))
    echo = echo_of(far, room_impulse_response(seed=delay_ms), delay_ms)
    with AudioProcessor(ProcessingOptions(aec=True, noise_suppression=True, agc=False)) as p:
        out = run(p, echo, far)
        delay = p.echo_delay_ms
    value = erle(echo, out)
    print(f"delay {delay_ms} ms: ERLE {value:.1f} dB, estimated delay {delay} ms")
    assert value >= 20.0
    # The echo path's delay is found from the adapted filter (direct sound = its peak).
    assert delay is not None and abs(delay - delay_ms) <= 5.0


def test_echo_reduced_with_every_stage_on(far_speech: Signal) -> None:
    far = fit(far_speech, int(SECONDS * SAMPLE_RATE))
    echo = echo_of(far, room_impulse_response(seed=7), 80)
    with AudioProcessor(ProcessingOptions()) as p:
        out = run(p, echo, far)
    value = erle(echo, out)
    print(f"all stages: ERLE {value:.1f} dB")
    assert value >= 20.0


def test_linear_filter_alone_cancels_most_echo(far_speech: Signal) -> None:
    far = fit(far_speech, int(SECONDS * SAMPLE_RATE))
    echo = echo_of(far, room_impulse_response(seed=3), 60)
    with AudioProcessor(ProcessingOptions(aec=True, noise_suppression=False, agc=False)) as p:
        out = run(p, echo, far)
    # The adaptive filter converges more slowly than the whole chain: judge its last 4 s.
    tail = slice(len(out) - 4 * SAMPLE_RATE, len(out))
    value = db(energy(echo[tail]) / max(energy(out[tail]), 1.0))
    print(f"linear filter only: ERLE over the last 4 s {value:.1f} dB")
    assert value >= 15.0


def test_timestamp_jitter_is_absorbed(far_speech: Signal) -> None:
    far = fit(far_speech, int(SECONDS * SAMPLE_RATE))
    echo = echo_of(far, room_impulse_response(seed=11), 40)
    with AudioProcessor(ProcessingOptions(agc=False)) as p:
        out = run(p, echo, far, jitter_s=0.0015, seed=5)
        stats = p.stats
    value = erle(echo, out)
    print(f"with +-1.5 ms stamp jitter: ERLE {value:.1f} dB, {stats}")
    assert value >= 20.0
    assert stats["reference_jumps"] == 0


def test_without_reference_nothing_is_cancelled(far_speech: Signal) -> None:
    """The measurement can fail: the same echo with no playout fed stays in the output."""
    far = fit(far_speech, int(6 * SAMPLE_RATE))
    echo = echo_of(far, room_impulse_response(seed=1), 60)
    with AudioProcessor(ProcessingOptions(aec=True, noise_suppression=False, agc=False)) as p:
        out = run(p, echo, None)
    assert erle(echo, out) < 3.0


def test_double_talk_keeps_the_near_end(far_speech: Signal, near_speech: Signal) -> None:
    n = int(SECONDS * SAMPLE_RATE)
    far = fit(far_speech, n)
    echo = echo_of(far, room_impulse_response(seed=21), 60)
    # The local talker starts once the canceller has converged.
    start = int(4.0 * SAMPLE_RATE)
    near = np.zeros(n)
    near[start:] = fit(near_speech, n - start)
    opts = ProcessingOptions(aec=True, noise_suppression=True, agc=False)
    with AudioProcessor(opts) as p:
        out = run(p, echo + near, far)
    near_db, echo_db, out_db = frame_levels(near), frame_levels(echo), frame_levels(out)
    # Double talk: frames where both talkers are clearly active.
    both = (near_db > -40) & (echo_db > -45)
    both[: start // FRAME_SAMPLES] = False
    assert both.sum() >= 50, "the scenario must contain double talk"
    frames = np.flatnonzero(both)
    near_e = sum(energy(near[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES]) for k in frames)
    out_e = sum(energy(out[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES]) for k in frames)
    drop = db(near_e / out_e)
    # And the output follows the near-end talker (its level contour), not the echo.
    corr_near = float(np.corrcoef(out_db[frames], near_db[frames])[0, 1])
    print(f"double talk over {both.sum()} frames: near-end drop {drop:.1f} dB, "
          f"level correlation with near end {corr_near:.2f}")
    assert drop < 6.0
    assert corr_near > 0.5
