"""The libspeexdsp binding itself: loading, sizes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.errors import EdgeroomError
from services.audio.speexdsp import EchoCanceller, Preprocessor, SpeexDspMissing, load_library


def test_missing_library_is_named_clearly() -> None:
    with pytest.raises(SpeexDspMissing, match="libspeexdsp1") as info:
        load_library(("libspeexdsp-not-here.so.9",))
    assert isinstance(info.value, ImportError) and isinstance(info.value, EdgeroomError)


def test_the_installed_library_loads() -> None:
    lib = load_library()
    assert lib is load_library()


def test_echo_canceller_checks_sizes_and_closes() -> None:
    with pytest.raises(ValueError, match="tail"):
        EchoCanceller(960, 100, 48000)
    aec = EchoCanceller(960, 4800, 48000)
    assert "open" in repr(aec)
    taps = aec.impulse_response()
    assert len(taps) == 4800 and not taps.any()
    frame = np.zeros(960, dtype=np.int16)
    with pytest.raises(ValueError, match="960"):
        aec.cancel(frame[:480], frame, frame.copy())
    with pytest.raises(TypeError, match="int16"):
        aec.cancel(frame.astype(np.int32), frame, frame.copy())
    aec.close()
    aec.close()
    with pytest.raises(ValueError, match="closed"):
        aec.reset()


def test_preprocessor_reports_probability_and_gain() -> None:
    with Preprocessor(960, 48000) as pre:
        pre.set_agc(True)
        pre.set_denoise(True)
        rng = np.random.default_rng(0)
        for _ in range(20):
            frame = (rng.standard_normal(960) * 300).astype(np.int16)
            pre.run(frame)
        assert 0 <= pre.speech_probability <= 100
        assert isinstance(pre.agc_gain, int)
        with pytest.raises(ValueError, match="960"):
            pre.run(np.zeros(100, dtype=np.int16))
    with pytest.raises(ValueError, match="closed"):
        pre.run(np.zeros(960, dtype=np.int16))
