"""What ``snd_pcm_delay`` reports on an ALSA playback device, through alsa-lib itself.

pyalsaaudio has no ``delay()``, so this opens the PCM with alsa-lib through ctypes, with
the period and buffer sizes the appliance asks for, writes one period at a time as the
speaker thread does (blocking writes: the device paces them), and reads after each write
both ``snd_pcm_delay`` (what alsa-lib and the plugin say is between the application and
the listener, the plugin's own latency included) and ``buffer - avail`` (what the
appliance's speaker counts as queued).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

SND_PCM_STREAM_PLAYBACK = 0
SND_PCM_ACCESS_RW_INTERLEAVED = 3
SND_PCM_FORMAT_S16_LE = 2


@dataclass(frozen=True)
class DelayFigures:
    period_size: int
    buffer_size: int
    delay_ms: list[float]  # snd_pcm_delay after each write, ms
    queued_ms: list[float]  # buffer - avail after each write, ms
    underruns: int

    @staticmethod
    def _pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {"period_ms": self.period_size / 48.0, "buffer_ms": self.buffer_size / 48.0,
                "delay_p50_ms": round(statistics.median(self.delay_ms), 1),
                "delay_p95_ms": round(self._pct(self.delay_ms, 0.95), 1),
                "delay_max_ms": round(max(self.delay_ms), 1),
                "queued_p50_ms": round(statistics.median(self.queued_ms), 1),
                "underruns": self.underruns}


def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("asound") or "libasound.so.2")
    lib.snd_pcm_writei.restype = ctypes.c_long
    lib.snd_pcm_avail.restype = ctypes.c_long
    return lib


def measure_playback_delay(device: str, *, period_size: int = 480, buffer_size: int = 1440,
                           seconds: float = 5.0, rate: int = 48_000) -> DelayFigures:
    """Play ``seconds`` of a quiet tone on ``device`` (mono s16 at ``rate``) and record
    the delay after each period written (the first half second, while the stream
    settles, is left out)."""
    lib = _lib()
    pcm = ctypes.c_void_p()
    check = _checker(device)
    check(lib.snd_pcm_open(ctypes.byref(pcm), device.encode(), SND_PCM_STREAM_PLAYBACK, 0),
          "open")
    try:
        hw = ctypes.c_void_p()
        check(lib.snd_pcm_hw_params_malloc(ctypes.byref(hw)), "hw_params_malloc")
        try:
            check(lib.snd_pcm_hw_params_any(pcm, hw), "hw_params_any")
            check(lib.snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED),
                  "set_access")
            check(lib.snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE), "format")
            check(lib.snd_pcm_hw_params_set_channels(pcm, hw, 1), "channels")
            r = ctypes.c_uint(rate)
            check(lib.snd_pcm_hw_params_set_rate_near(pcm, hw, ctypes.byref(r), None), "rate")
            period = ctypes.c_ulong(period_size)
            check(lib.snd_pcm_hw_params_set_period_size_near(pcm, hw, ctypes.byref(period),
                                                             None), "period")
            buffer = ctypes.c_ulong(buffer_size)
            check(lib.snd_pcm_hw_params_set_buffer_size_near(pcm, hw, ctypes.byref(buffer)),
                  "buffer")
            check(lib.snd_pcm_hw_params(pcm, hw), "hw_params")
        finally:
            lib.snd_pcm_hw_params_free(hw)
        period_n, buffer_n = int(period.value), int(buffer.value)
        t = [int(3000 * ((i * 440 / rate) % 1.0 < 0.5)) - 1500 for i in range(period_n)]
        block = (ctypes.c_int16 * period_n)(*t)
        delays: list[float] = []
        queued: list[float] = []
        underruns = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            written = lib.snd_pcm_writei(pcm, block, period_n)
            if written == -errno.EPIPE:
                underruns += 1
                lib.snd_pcm_prepare(pcm)
                continue
            if written < 0:
                raise OSError(-written, f"snd_pcm_writei on {device!r}")
            if time.monotonic() - start < 0.5:
                continue
            delay = ctypes.c_long()
            if lib.snd_pcm_delay(pcm, ctypes.byref(delay)) == 0:
                delays.append(delay.value * 1000 / r.value)
            avail = lib.snd_pcm_avail(pcm)
            if 0 <= avail <= buffer_n:
                queued.append((buffer_n - avail) * 1000 / r.value)
        return DelayFigures(period_n, buffer_n, delays, queued, underruns)
    finally:
        lib.snd_pcm_close(pcm)


def _checker(device: str) -> Callable[[int, str], None]:
    def check(rc: int, what: str) -> None:
        if rc < 0:
            raise OSError(-rc, f"alsa-lib {what} on {device!r} failed: errno {-rc}")
    return check
