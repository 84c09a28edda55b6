"""Speech made once per test session (espeak-ng + sox), shared by the DSP tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .signals import Signal, espeak, scale_to_dbfs

FAR_TEXT = (
    "The quick brown fox jumps over the lazy dog. Meanwhile the committee agreed to "
    "postpone the budget discussion until next Thursday afternoon, when everyone would be "
    "back from the conference. Please remember to bring the quarterly figures and the new "
    "project schedule."
)
NEAR_TEXT = (
    "Hello, can everyone hear me? I think there is a problem with the projector in room "
    "four. Could someone from facilities come and take a look before the next meeting?"
)


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def far_speech(speech_dir: Path) -> Signal:
    """About 16 s of a male voice at -20 dBFS (what the room sends to the speaker)."""
    return scale_to_dbfs(espeak(FAR_TEXT, "en-us", speech_dir / "far.wav"), -20.0)


@pytest.fixture(scope="session")
def near_speech(speech_dir: Path) -> Signal:
    """About 10 s of a different (female, British) voice at -24 dBFS: the local talker."""
    return scale_to_dbfs(espeak(NEAR_TEXT, "en-gb+f3", speech_dir / "near.wav", speed=150),
                         -24.0)
