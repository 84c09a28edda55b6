"""Echo cancellation on a simulated echo path: speech through a room, 20-120 ms late."""

from __future__ import annotations

import threading

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
    frame_levels,
    room_impulse_response,
    run,
    to_pcm,
    white_noise,
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
        delay, measured, moves = p.echo_delay_ms, p.measured_delay_ms, p.reference_moves
    value = erle(echo, out)
    print(f"delay {delay_ms} ms: ERLE {value:.1f} dB, filter peak at {delay} ms, "
          f"cross-correlation {measured} ms")
    assert value >= 20.0
    # The echo path's delay is found from the adapted filter (direct sound = its peak)
    # and by cross-correlation; inside the filter's window nothing is moved.
    assert delay is not None and abs(delay - delay_ms) <= 5.0
    assert measured is not None and abs(measured - delay_ms) <= 5.0
    assert moves == 0


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


@pytest.mark.parametrize(("delay_ms", "stamp_error_ms"), [(20, 300), (25, -60)])
def test_echo_outside_the_window_is_found(far_speech: Signal, delay_ms: int,
                                          stamp_error_ms: int) -> None:
    """Playout stamps off by -300 ms (echo 320 ms "late") or +60 ms (echo before its stamp)."""
    far = fit(far_speech, int(14 * SAMPLE_RATE))
    echo = echo_of(far, room_impulse_response(seed=5), delay_ms)
    with AudioProcessor(ProcessingOptions(agc=False)) as p:
        out = run(p, echo, far, stamp_error_s=-stamp_error_ms / 1000.0, ahead=6)
        offset, moves, measured = p.reference_offset_ms, p.reference_moves, p.measured_delay_ms
    apparent = delay_ms + stamp_error_ms
    last = slice(len(out) - 5 * SAMPLE_RATE, len(out))
    value = db(energy(echo[last]) / max(energy(out[last]), 1.0))
    print(f"echo {apparent} ms after its stamp: measured {measured} ms, offset {offset} ms, "
          f"ERLE over the last 5 s {value:.1f} dB")
    assert moves == 1
    assert measured is not None and abs(measured - apparent) <= 3.0
    assert value >= 20.0


def test_delay_tracking_can_be_switched_off(far_speech: Signal) -> None:
    far = fit(far_speech, int(8 * SAMPLE_RATE))
    echo = echo_of(far, room_impulse_response(seed=5), 20)
    with AudioProcessor(ProcessingOptions(agc=False, track_delay=False)) as p:
        out = run(p, echo, far, stamp_error_s=-0.3)
        assert p.reference_moves == 0 and p.measured_delay_ms is None
    # The echo is outside the canceller's window: it is barely reduced.
    assert erle(echo, out) < 15.0


def test_playout_fed_from_another_thread(far_speech: Signal) -> None:
    """The speaker's thread feeds the reference while the mic path processes: same result."""
    far = fit(far_speech, int(6 * SAMPLE_RATE))
    echo = echo_of(far, room_impulse_response(seed=8), 40)
    with AudioProcessor(ProcessingOptions(agc=False)) as p:
        expected = run(p, echo, far)
    far16, mic16 = to_pcm(far), to_pcm(echo)
    n = len(mic16) // FRAME_SAMPLES
    # Like a real speaker buffer, the speaker runs a few frames ahead, never more.
    cond = threading.Condition()
    fed = processed = 0

    def speaker() -> None:
        nonlocal fed
        for k in range(n):
            with cond:
                if not cond.wait_for(lambda: processed >= k - 5, timeout=10):  # noqa: B023
                    return
            chunk = far16[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES].tobytes()
            p.feed_playout(PcmFrame(chunk, T0 + k * FRAME_S, k), T0 + k * FRAME_S)
            with cond:
                fed = k + 1
                cond.notify_all()

    out = []
    with AudioProcessor(ProcessingOptions(agc=False)) as p:
        thread = threading.Thread(target=speaker, name="test-speaker")
        thread.start()
        try:
            for k in range(n):
                need = min(n, k + 3)  # as run(): two frames ahead of the one captured
                with cond:
                    assert cond.wait_for(lambda: fed >= need, timeout=10)  # noqa: B023
                chunk = mic16[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES].tobytes()
                sent = p.process(PcmFrame(chunk, T0 + k * FRAME_S, k))
                out.append(np.frombuffer(sent.samples, dtype=np.int16))
                with cond:
                    processed = k + 1
                    cond.notify_all()
        finally:
            thread.join(10)
    assert np.array_equal(np.concatenate(out), expected)


def test_no_echo_moves_nothing(far_speech: Signal, near_speech: Signal) -> None:
    """Far end playing, but the mic hears only the local talker and noise (speaker muted
    or far away): no delay is found, so the reference window stays where it is."""
    n = int(12 * SAMPLE_RATE)
    mic = fit(near_speech, n) + white_noise(12.0, -40.0, seed=6)
    with AudioProcessor(ProcessingOptions(agc=False)) as p:
        run(p, mic, fit(far_speech, n))
        assert p.reference_moves == 0
        assert p.measured_delay_ms is None
