"""The FEC-on-speech benchmark's comparison: alignment and the two figures it reports."""

from __future__ import annotations

import numpy as np

from bench.bench_fec_speech import FRAME, RATE, compare, lag_of


def _speechlike(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(3)
    n = int(seconds * RATE)
    envelope = np.repeat(rng.uniform(0.05, 1.0, n // FRAME + 1), FRAME)[:n]
    return np.clip(rng.standard_normal(n) * 6000 * envelope, -32768, 32767).astype(np.int16)


def test_a_delayed_copy_is_aligned_and_matches() -> None:
    sent = _speechlike(3.0)
    played = np.concatenate([np.zeros(2229, np.int16), sent, np.zeros(960, np.int16)])
    assert lag_of(sent, played) == 2229
    within, lsd, lag = compare(sent, played, {10, 40})
    assert lag == 2229 and within == 1.0 and lsd < 1e-6


def test_silenced_windows_count_as_missed_and_far() -> None:
    sent = _speechlike(3.0)
    played = np.concatenate([np.zeros(480, np.int16), sent])
    lost = {20, 60, 100}
    for i in lost:  # what a receiver that plays nothing for a lost packet would do
        played[480 + i * FRAME:480 + (i + 1) * FRAME] = 0
    within, lsd, _ = compare(sent, played, lost)
    n = len(sent) // FRAME
    assert abs(within - (n - len(lost)) / n) < 1e-9
    assert lsd > 10.0  # a third of the touched windows are silence
