"""A stage that is switched off leaves the signal bit-for-bit as it was."""

from __future__ import annotations

import numpy as np
import pytest

from device.config import AudioConfig, Config, parse
from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame
from services.audio import AudioFormatError, AudioProcessor, ProcessingOptions
from services.audio.processing import agc_level_for
from services.audio.speexdsp import EchoCanceller, Preprocessor

from .signals import Signal, echo_of, fit, room_impulse_response, run, to_pcm, white_noise

SECONDS = 4


@pytest.fixture
def scene(far_speech: Signal, near_speech: Signal) -> tuple[Signal, Signal]:
    """(mic, far): near speech + noise + echo of the far end, and the far end."""
    n = SECONDS * SAMPLE_RATE
    far = fit(far_speech, n)
    mic = fit(near_speech, n) + white_noise(SECONDS, -45.0, seed=9) + echo_of(
        far, room_impulse_response(seed=2), 50)
    return mic, far


def reference_preprocessor(o: ProcessingOptions, denoise: bool, agc: bool) -> Preprocessor:
    pre = Preprocessor(FRAME_SAMPLES, SAMPLE_RATE)
    pre.set_noise_suppress(o.noise_suppress_db)
    pre.set_echo_suppress(o.echo_suppress_db, o.echo_suppress_active_db)
    pre.set_agc_level(agc_level_for(o.agc_level_dbfs))
    pre.set_agc_max_gain(o.agc_max_gain_db)
    pre.set_denoise(denoise)
    pre.set_agc(agc)
    return pre


def frames_of(x: Signal) -> list[np.ndarray]:
    pcm = to_pcm(x)
    return [pcm[k:k + FRAME_SAMPLES].copy() for k in range(0, len(pcm) - FRAME_SAMPLES + 1,
                                                          FRAME_SAMPLES)]


def test_all_off_output_is_the_input(scene: tuple[Signal, Signal]) -> None:
    mic, far = scene
    with AudioProcessor(ProcessingOptions(aec=False, noise_suppression=False, agc=False)) as p:
        out = run(p, mic, far)
        frame = PcmFrame(to_pcm(mic[:FRAME_SAMPLES]).tobytes(), 5.0, 3)
        assert p.process(frame) is frame
    assert np.array_equal(out, to_pcm(mic)[: len(out)])


def test_aec_off_ignores_the_playout(scene: tuple[Signal, Signal]) -> None:
    mic, far = scene
    options = ProcessingOptions(aec=False)
    with AudioProcessor(options) as a, AudioProcessor(options) as b:
        with_playout, without = run(a, mic, far), run(b, mic, None)
    assert np.array_equal(with_playout, without)
    # ... and it is exactly the preprocessor alone on the raw mic.
    with reference_preprocessor(options, denoise=True, agc=True) as pre:
        expected = []
        for chunk in frames_of(mic):
            pre.run(chunk)
            expected.append(chunk)
    assert np.array_equal(with_playout, np.concatenate(expected))


def test_aec_on_does_use_the_playout(scene: tuple[Signal, Signal]) -> None:
    mic, far = scene
    with AudioProcessor() as a, AudioProcessor() as b:
        assert not np.array_equal(run(a, mic, far), run(b, mic, None))


def test_ns_and_agc_off_give_the_echo_canceller_output(scene: tuple[Signal, Signal]) -> None:
    mic, far = scene
    options = ProcessingOptions(aec=True, noise_suppression=False, agc=False)
    with AudioProcessor(options) as p:
        out = run(p, mic, far)
    tail = SAMPLE_RATE * options.echo_tail_ms // 1000
    with EchoCanceller(FRAME_SAMPLES, tail, SAMPLE_RATE) as aec:
        expected = []
        for m, r in zip(frames_of(mic), frames_of(far), strict=True):
            o = np.empty(FRAME_SAMPLES, dtype=np.int16)
            aec.cancel(m, r, o)
            expected.append(o)
    assert np.array_equal(out, np.concatenate(expected))


@pytest.mark.parametrize(("ns", "agc"), [(True, False), (False, True)])
def test_one_preprocessor_stage_off(scene: tuple[Signal, Signal], ns: bool, agc: bool) -> None:
    mic, _ = scene
    options = ProcessingOptions(aec=False, noise_suppression=ns, agc=agc)
    with AudioProcessor(options) as p:
        out = run(p, mic)
    with reference_preprocessor(options, denoise=ns, agc=agc) as pre:
        expected = []
        for chunk in frames_of(mic):
            pre.run(chunk)
            expected.append(chunk)
    assert np.array_equal(out, np.concatenate(expected))
    # The stage that is on does change the signal (so the comparison means something).
    assert not np.array_equal(out, to_pcm(mic)[: len(out)])


def test_switching_everything_off_at_run_time(scene: tuple[Signal, Signal]) -> None:
    mic, far = scene
    half = len(mic) // 2 // FRAME_SAMPLES * FRAME_SAMPLES
    with AudioProcessor() as p:
        first = run(p, mic[:half], far[:half])
        assert not np.array_equal(first, to_pcm(mic[:half]))
        p.set_options(aec=False, ns=False, agc=False)
        second = run(p, mic[half:], far[half:])
        assert np.array_equal(second, to_pcm(mic[half:])[: len(second)])
        p.set_options(ns=True)
        assert p.options.noise_suppression and not p.options.aec


def test_options_come_from_the_config() -> None:
    audio = parse("[audio]\naec = false\nnoise_suppression = true\nagc = false\n").audio
    assert ProcessingOptions.from_config(audio) == ProcessingOptions(
        aec=False, noise_suppression=True, agc=False)
    defaults = Config().audio
    assert ProcessingOptions.from_config(defaults).aec
    assert not ProcessingOptions.from_config(defaults, has_speaker=False).aec
    with AudioProcessor.from_config(AudioConfig(agc=False)) as p:
        assert p.options.aec and p.options.noise_suppression and not p.options.agc
        p.apply_config(Config().replace({"audio": {"aec": False, "agc": True}}).audio)
        assert not p.options.aec and p.options.noise_suppression and p.options.agc
        p.apply_config(defaults, has_speaker=False)
        assert not p.options.aec and p.options.agc


def test_bad_frames_are_refused_clearly() -> None:
    with AudioProcessor() as p:
        with pytest.raises(AudioFormatError, match="1920 bytes"):
            p.process(PcmFrame(b"\0" * 100, 1.0))
        with pytest.raises(AudioFormatError, match="16000"):
            p.process(PcmFrame(b"\0" * 1920, 1.0, sample_rate=16000))
        # A bad playout frame never raises into the speaker's thread.
        p.feed_playout(PcmFrame(b"\0" * 3, 1.0), 1.0)
        p.feed_playout(PcmFrame(b"\0" * 640, 1.0, sample_rate=16000), 1.0)
        assert p.bad_playout == 2
        # Stereo playout is mixed down and used.
        p.feed_playout(PcmFrame(b"\1\0" * 1920, 1.0, channels=2), 1.0)
        assert p.stats["reference_frames"] == 1
        good = PcmFrame(b"\0" * 1920, 1.0)
        p.process(good)
    with pytest.raises(ValueError, match="closed"):
        p.process(good)
    p.close()  # idempotent
    with pytest.raises(ValueError, match="echo_tail_ms"):
        AudioProcessor(ProcessingOptions(echo_tail_ms=5))
