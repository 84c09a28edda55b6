"""Sample conversion, gain and clipping, and the device inventory parsing."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from drivers.audio import inventory
from drivers.audio.alsa_device import alsa_errno
from drivers.audio.base import FRAME_SAMPLES
from drivers.audio.pcm import (
    FRAME_BYTES,
    LinearResampler,
    Rechunker,
    apply_gain,
    decode,
    encode,
    level_dbfs,
    percent_to_gain,
)

if TYPE_CHECKING:
    from tests.drivers.conftest import AsoundRc


def s16(values: list[int]) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def test_gain_curve_ends_and_order() -> None:
    assert percent_to_gain(0) == 0.0
    assert percent_to_gain(100) == 1.0
    gains = [percent_to_gain(p) for p in range(101)]
    assert gains == sorted(gains) and len(set(gains)) == 101
    assert -19 < 20 * math.log10(percent_to_gain(50)) < -17
    for bad in (-1, 101):
        with pytest.raises(ValueError, match="0-100"):
            percent_to_gain(bad)


def test_gain_clips_instead_of_wrapping() -> None:
    loud = s16([30000, -30000, 16384, -16384, 0, 32767, -32768])
    out = np.frombuffer(apply_gain(loud, 2.0), dtype="<i2").tolist()
    assert out == [32767, -32768, 32767, -32768, 0, 32767, -32768]
    assert apply_gain(loud, 1.0) == loud
    assert apply_gain(loud, 0.0) == bytes(len(loud))
    half = np.frombuffer(apply_gain(loud, 0.5), dtype="<i2").tolist()
    assert half == [15000, -15000, 8192, -8192, 0, 16384, -16384]


def test_float_device_samples_beyond_full_scale_are_clipped() -> None:
    floats = np.array([1.5, -2.0, 0.5, -0.25], dtype="<f4").tobytes()
    x = decode(floats, "FLOAT_LE", 1)
    assert np.frombuffer(encode(x, "S16_LE", 1), dtype="<i2").tolist() == [
        32767, -32768, 16384, -8192]
    back = np.frombuffer(encode(x, "FLOAT_LE", 2), dtype="<f4").tolist()
    assert back == [1.0, 1.0, -1.0, -1.0, 0.5, 0.5, -0.25, -0.25]


def test_s24_in_32_bit_container() -> None:
    # -1 in 24 bits with and without the top byte sign-extended, and full scale.
    raw = np.array([0x00FFFFFF, -1, 0x007FFFFF, 0x00800000], dtype="<i4").tobytes()
    x = decode(raw, "S24_LE", 1)
    assert x.tolist() == [-1 / 256, -1 / 256, 8388607 / 256, -32768.0]
    back = np.frombuffer(encode(np.array([-32768.0, 16384.0], dtype=np.float32),
                                "S24_LE", 1), dtype="<i4")
    assert back.tolist() == [-8388608, 4194304]


def test_s32_and_stereo_decode() -> None:
    stereo32 = np.array([1 << 30, 0, -(1 << 31), -(1 << 31)], dtype="<i4").tobytes()
    assert decode(stereo32, "S32_LE", 2).tolist() == [8192.0, -32768.0]
    mono = np.array([100.0, -100.0], dtype=np.float32)
    assert np.frombuffer(encode(mono, "S32_LE", 1), dtype="<i4").tolist() == [
        100 << 16, -100 << 16]


@pytest.mark.parametrize(("src", "dst"), [(44100, 48000), (48000, 44100), (16000, 48000),
                                          (96000, 48000)])
def test_resampler_keeps_frequency_and_joins_chunks(src: int, dst: int) -> None:
    x = (np.sin(2 * np.pi * 700 * np.arange(src) / src) * 10000).astype(np.float32)
    whole = LinearResampler(src, dst).process(x)
    rs = LinearResampler(src, dst)
    sizes = [1, 17, 441, 1000, 3]
    parts: list[np.ndarray] = []
    pos = 0
    while pos < x.size:
        n = sizes[len(parts) % len(sizes)]
        parts.append(rs.process(x[pos:pos + n]))
        pos += n
    chunked = np.concatenate(parts)
    # A streaming resampler holds back the last input interval until more comes.
    assert 0 <= dst - whole.size <= math.ceil(dst / src) + 1
    assert np.allclose(chunked, whole[:chunked.size], atol=0.05)
    spectrum = np.abs(np.fft.rfft(whole * np.hanning(whole.size)))
    assert abs(np.argmax(spectrum) * dst / whole.size - 700) < 2


def test_rechunker_stamps_each_frame_with_its_first_sample() -> None:
    r = Rechunker()
    out = r.push(bytes(FRAME_BYTES // 2), 10.0)
    assert out == []
    out = r.push(bytes(FRAME_BYTES * 2), 10.01)  # continues 10 ms (480 samples) later
    assert [len(s) for s, _ in out] == [FRAME_BYTES, FRAME_BYTES]
    assert [round(t, 6) for _, t in out] == [10.0, 10.02]


def test_level_meter() -> None:
    assert level_dbfs(bytes(FRAME_BYTES)) == -math.inf
    full = (np.sin(2 * np.pi * 1000 * np.arange(FRAME_SAMPLES) / 48000) * 32767).astype("<i2")
    assert abs(level_dbfs(full.tobytes()) - (-3.01)) < 0.05


def test_alsa_error_text_maps_to_errno() -> None:
    import errno

    assert alsa_errno(Exception("Device or resource busy [hw:1,0]")) == errno.EBUSY
    assert alsa_errno(Exception("No such file or directory [nosuch]")) == errno.ENOENT
    assert alsa_errno(Exception("No such device [hw:CARD=X]")) == errno.ENODEV
    assert alsa_errno(Exception("something else [x]")) is None


def test_inventory_lists_hardware_and_named_pcms(
        fake_asound: Path, asoundrc: AsoundRc) -> None:
    asoundrc.file_pcm("roommic")
    proc = fake_asound
    mics = inventory.list_devices(True, proc)
    speakers = inventory.list_devices(False, proc)
    hw_mics = [d for d in mics if d["kind"] == "hw"]
    assert [d["name"] for d in hw_mics] == ["plughw:0,0", "plughw:1,0"]
    assert hw_mics[1]["description"] == "USB Audio Device: USB Audio"
    assert hw_mics[1]["card_id"] == "Device"
    assert "plughw:0,3" in [d["name"] for d in speakers]
    assert "plughw:0,3" not in [d["name"] for d in mics]
    assert "roommic" in [d["name"] for d in mics]
    everything = inventory.audio_devices(proc)
    assert set(everything) == {"microphones", "speakers"}
    line = inventory.describe_available(True, proc)
    assert "plughw:1,0 (USB Audio Device: USB Audio)" in line and "1 Device" in line


def test_busy_device_names_its_holder(fake_asound: Path) -> None:
    proc = fake_asound
    holder = inventory.busy_holder("plughw:CARD=Device,DEV=0", True, proc)
    assert holder is not None and "arecord" in holder and str(os.getpid()) in holder
    assert inventory.busy_holder("hw:1,0", False, proc) is None  # playback side is free
    assert inventory.card_of("hw:1,0", proc) == (1, 0)
    assert inventory.card_of("sysdefault:CARD=PCH", proc) == (0, 0)
    assert inventory.card_of("default", proc) == (None, None)


def test_inventory_without_sound_cards_is_empty_not_an_error(tmp_path: Path) -> None:
    assert inventory.read_cards(tmp_path / "missing") == []
    assert inventory.read_hw_pcms(tmp_path / "missing") == []
