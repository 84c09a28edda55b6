"""Noise suppression, gain control and voice activity on speech and noise."""

from __future__ import annotations

import numpy as np

from services.audio import AudioProcessor, ProcessingOptions

from .signals import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Signal,
    db,
    energy,
    fit,
    frame_levels,
    run,
    scale_to_dbfs,
    white_noise,
)

NS_ONLY = ProcessingOptions(aec=False, noise_suppression=True, agc=False)
ALL_OFF = ProcessingOptions(aec=False, noise_suppression=False, agc=False)


def test_white_noise_reduced_by_10_db(near_speech: Signal) -> None:
    # 4 s of noise alone, then speech in the same noise.
    noise_s, total = 4.0, 12.0
    noise = white_noise(total, -30.0, seed=1)
    speech = np.zeros(len(noise))
    start = int(noise_s * SAMPLE_RATE)
    speech[start:] = fit(near_speech, len(noise) - start)
    with AudioProcessor(NS_ONLY) as p:
        out = run(p, noise + speech)
    # Noise alone, after 1 s for the noise estimate to settle.
    quiet = slice(1 * SAMPLE_RATE, start)
    reduction = db(energy(noise[quiet]) / energy(out[quiet]))
    # Speech is not gated: over frames where speech is well above the noise, the output
    # keeps the speech's level.
    speech_db = frame_levels(speech)
    talk = np.flatnonzero(speech_db > -28)
    talk = talk[talk >= start // FRAME_SAMPLES]
    assert len(talk) >= 50
    sp_e = sum(energy(speech[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES]) for k in talk)
    out_e = sum(energy(out[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES]) for k in talk)
    speech_drop = db(sp_e / out_e)
    print(f"noise reduced by {reduction:.1f} dB; speech level drop {speech_drop:.1f} dB")
    assert reduction >= 10.0
    assert speech_drop < 6.0


def test_without_suppression_noise_passes(near_speech: Signal) -> None:
    noise = white_noise(4.0, -30.0, seed=2)
    with AudioProcessor(ALL_OFF) as p:
        out = run(p, noise)
    assert abs(db(energy(noise[: len(out)]) / energy(out))) < 0.1


def active_dbfs(x: np.ndarray) -> float:
    y = np.asarray(x, dtype=np.float64)
    active = np.abs(y) > np.max(np.abs(y)) * 10 ** (-50 / 20)
    return db(float(np.mean(y[active] ** 2)) / 32768.0**2)


def test_agc_brings_quiet_and_loud_speech_to_the_target(near_speech: Signal) -> None:
    speech = fit(np.concatenate([near_speech, near_speech]), 14 * SAMPLE_RATE)
    target = -26.0
    options = ProcessingOptions(aec=False, noise_suppression=False, agc=True,
                                agc_level_dbfs=target)
    results = {}
    for level in (-42.0, -14.0):
        x = scale_to_dbfs(speech, level)
        with AudioProcessor(options) as p:
            out = run(p, x)
        results[level] = active_dbfs(out[8 * SAMPLE_RATE:])
    print(f"agc: -42 dBFS speech -> {results[-42.0]:.1f}, -14 dBFS -> {results[-14.0]:.1f}")
    for level, reached in results.items():
        assert abs(reached - target) <= 4.0, (level, reached)


def vad_fraction(flags: list[bool], frames: np.ndarray) -> float:
    return float(np.mean(np.asarray(flags)[frames]))


def test_vad_follows_speech(near_speech: Signal) -> None:
    # 2 s silence, speech, 2 s faint noise (-60 dBFS).
    speech = fit(near_speech, 8 * SAMPLE_RATE)
    signal = np.concatenate([np.zeros(2 * SAMPLE_RATE), speech,
                             white_noise(3.0, -60.0, seed=3)])
    for options in (ProcessingOptions(aec=False), ALL_OFF):
        flags: list[bool] = []
        with AudioProcessor(options) as p:
            run(p, signal, vad=flags)
        levels = frame_levels(signal)
        fps = SAMPLE_RATE // FRAME_SAMPLES
        silence = np.arange(0, 2 * fps)
        talk = np.flatnonzero(levels > -35)
        faint = np.arange(len(levels) - 2 * fps, len(levels))
        print(f"{options.noise_suppression=}: vad on speech {vad_fraction(flags, talk):.2f}, "
              f"silence {vad_fraction(flags, silence):.2f}, faint {vad_fraction(flags, faint):.2f}")
        assert vad_fraction(flags, talk) >= 0.8
        assert vad_fraction(flags, silence) == 0.0
        assert vad_fraction(flags, faint) <= 0.05


def test_vad_ignores_steady_noise() -> None:
    flags: list[bool] = []
    with AudioProcessor(NS_ONLY) as p:
        run(p, white_noise(6.0, -30.0, seed=4), vad=flags)
    assert np.mean(flags[100:]) <= 0.05


def test_level_is_reported_in_dbfs() -> None:
    tone = 0.5 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    with AudioProcessor(ALL_OFF) as p:
        run(p, tone)
        assert abs(p.level_dbfs - (-9.03)) < 0.1  # half-scale sine: -6 dB - 3 dB
        run(p, np.zeros(FRAME_SAMPLES * 3))
        assert p.level_dbfs == float("-inf")
