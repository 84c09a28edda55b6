"""What the ALSA mic and speaker share: opening with clear errors, the mixer, and the
device thread that reopens a lost device with backoff.

pyalsaaudio reports every failure as ``ALSAAudioError("<strerror> [<device>]")``; the
errno is recovered from the text so that a missing device, a busy one and one that
vanished mid-stream can be told apart.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.audio import inventory
from drivers.audio.alsa_mixer import Mixer, find_mixer
from drivers.audio.base import SAMPLE_RATE
from drivers.audio.pcm import FORMATS, percent_to_gain
from drivers.base import Emit, hand_to_loop, null_emit
from drivers.errors import DeviceBusy, DeviceError, DeviceNotFound
from drivers.threadname import name_this_thread

log = logging.getLogger(__name__)

#: Seconds between reopen attempts after a device was lost (the last one repeats).
REOPEN_BACKOFF: tuple[float, ...] = (0.1, 0.3, 1.0, 2.0, 5.0)
#: A stream that ran this long before failing starts its reopen backoff afresh.
STABLE_S = 5.0

_KNOWN_ERRNOS = (errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EBUSY, errno.EIO,
                 errno.EPIPE, errno.ESTRPIPE, errno.EBADFD, errno.EINVAL, errno.EAGAIN,
                 errno.EPERM, errno.EACCES)
_STRERROR = {os.strerror(e): e for e in _KNOWN_ERRNOS}
_NOT_FOUND = (errno.ENOENT, errno.ENODEV, errno.ENXIO)

def alsa_errno(exc: BaseException) -> int | None:
    """The errno behind an ``ALSAAudioError`` message, when it is a known one."""
    text = str(exc).rsplit(" [", 1)[0].strip()
    return _STRERROR.get(text)


@dataclass(frozen=True)
class DeviceParams:
    """What the device actually agreed to (may differ from what was asked)."""

    rate: int
    channels: int
    format: str
    period_size: int
    buffer_size: int

    @property
    def native(self) -> bool:
        """True when no conversion is needed (48 kHz mono s16le)."""
        return self.rate == SAMPLE_RATE and self.channels == 1 and self.format == "S16_LE"


_error_handler: Any = None


def route_alsa_messages() -> None:
    """Send alsa-lib's own error prints (``ALSA lib pcm.c:...``) to our log at debug.

    alsa-lib writes them to stderr by default, which puts a confusing line in the
    journal at every reopen attempt of a missing device; our own errors say more.
    """
    global _error_handler
    if _error_handler is not None:
        return
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("asound") or "libasound.so.2")
    except OSError:
        _error_handler = False
        return
    # void handler(const char *file, int line, const char *func, int err, const char *fmt, ...)
    # The variadic part is ignored: fixed arguments are passed the same way.
    prototype = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_char_p)

    def handler(file: bytes | None, line: int, func: bytes | None, err: int,
                fmt: bytes | None) -> None:
        log.debug("alsa-lib %s:%d %s: %s%s", (file or b"?").decode(errors="replace"),
                  line, (func or b"?").decode(errors="replace"),
                  (fmt or b"").decode(errors="replace"),
                  f" ({os.strerror(abs(err))})" if err else "")

    _error_handler = prototype(handler)  # referenced for as long as alsa-lib may call it
    lib.snd_lib_error_set_handler(_error_handler)


def open_pcm(device: str, *, capture: bool, rate: int, channels: int, period_size: int,
             buffer_size: int, pcm_class: Callable[..., Any] | None = None,
             proc: Path = inventory.PROC_ASOUND) -> tuple[Any, DeviceParams]:
    """Open an ALSA PCM; raise DeviceNotFound / DeviceBusy / DeviceError with detail.

    ``pcm_class`` stands in for ``alsaaudio.PCM`` (tests), ``proc`` for /proc/asound.
    """
    import alsaaudio

    route_alsa_messages()
    kind = "capture" if capture else "playback"
    periods = max(2, round(buffer_size / max(1, period_size)))
    try:
        with inventory.ALSA_LIB_LOCK:
            pcm = (pcm_class or alsaaudio.PCM)(
                alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK,
                alsaaudio.PCM_NORMAL, device=device, rate=rate, channels=channels,
                format=alsaaudio.PCM_FORMAT_S16_LE, periodsize=period_size, periods=periods)
    except alsaaudio.ALSAAudioError as exc:
        code = alsa_errno(exc)
        if code in _NOT_FOUND:
            raise DeviceNotFound(
                f"ALSA {kind} device {device!r} not found; "
                f"{inventory.describe_available(capture, proc)}") from exc
        if code == errno.EBUSY:
            holder = inventory.busy_holder(device, capture, proc)
            by = f"held by {holder}" if holder else "held by another process"
            raise DeviceBusy(f"ALSA {kind} device {device!r} is busy ({by})") from exc
        raise DeviceError(f"ALSA {kind} device {device!r} cannot be opened: {exc}") from exc
    info = pcm.info()
    params = DeviceParams(rate=int(info["rate"]), channels=int(info["channels"]),
                          format=str(info["format_name"]),
                          period_size=int(info["period_size"]),
                          buffer_size=int(info["buffer_size"]))
    if params.format not in FORMATS or params.channels < 1 or params.rate < 1000:
        pcm.close()
        raise DeviceError(
            f"ALSA {kind} device {device!r} offers {params.format} x{params.channels} at "
            f"{params.rate} Hz, which this appliance cannot convert; use a plughw: device")
    return pcm, params


#: How a stream opens its device: :func:`open_pcm`'s signature (a fake in tests).
PcmOpener = Callable[..., tuple[Any, DeviceParams]]


class StreamBroken(DeviceError):
    """An I/O error other than an xrun: the stream is unusable and must be reopened."""


class AlsaStream:
    """The life of one ALSA device: open, a thread doing blocking I/O, reopen on loss.

    Subclasses implement :meth:`_io` (runs on the device thread until stopping or
    until it raises :class:`StreamBroken`).
    """

    capture = True
    kind = "mic"

    def __init__(self, device: str = "default", *, period_size: int = 480,
                 buffer_size: int = 1440, rate: int = SAMPLE_RATE, channels: int = 1,
                 volume: int = 100, emit: Emit = null_emit,
                 backoff: Sequence[float] = REOPEN_BACKOFF,
                 opener: PcmOpener = open_pcm) -> None:
        if not backoff:
            raise ValueError("backoff needs at least one delay")
        self.device = device
        self._period_size = period_size
        self._buffer_size = buffer_size
        self._rate = rate
        self._channels = channels
        self._emit = emit
        self._backoff = tuple(backoff)
        self._opener = opener
        self._gain = percent_to_gain(volume)  # raises ValueError outside 0-100
        self._percent = volume
        self._mixer: Mixer | None = None
        self._mixer_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lost = False
        self.params: DeviceParams | None = None
        self.counters = {"frames": 0, "dropped": 0, "reopens": 0}

    # -- volume ----------------------------------------------------------------------

    def _set_level(self, percent: int) -> None:
        gain = percent_to_gain(percent)  # raises ValueError outside 0-100
        with self._mixer_lock:
            self._percent = percent
            mixer = self._mixer
            if mixer is not None:
                try:
                    mixer.set(percent)
                    self._gain = 1.0
                    return
                except Exception as exc:
                    log.warning("%s %s: mixer %r failed (%s); using software gain",
                                self.kind, self.device, mixer.name, exc)
                    self._mixer = None
            self._gain = gain

    def _attach_mixer(self) -> None:
        try:
            mixer = find_mixer(self.device, self.capture)
        except Exception as exc:
            log.debug("%s %s: no mixer (%s)", self.kind, self.device, exc)
            mixer = None
        with self._mixer_lock:
            old, self._mixer = self._mixer, mixer
        if old is not None:
            old.close()
        log.info("%s %s: %s", self.kind, self.device,
                 f"hardware volume on mixer control {mixer.name!r}" if mixer
                 else "software volume")
        self._set_level(self._percent)

    @property
    def hardware_volume(self) -> str | None:
        """Name of the mixer control in use, or None when the gain is applied in software."""
        mixer = self._mixer
        return mixer.name if mixer else None

    # -- life cycle --------------------------------------------------------------------

    def _open(self) -> Any:
        pcm, params = self._opener(self.device, capture=self.capture, rate=self._rate,
                               channels=self._channels, period_size=self._period_size,
                               buffer_size=self._buffer_size)
        if self.params != params:
            log.info("%s %s: %d Hz x%d %s, period %d, buffer %d%s", self.kind, self.device,
                     params.rate, params.channels, params.format, params.period_size,
                     params.buffer_size, "" if params.native else " (converted)")
        self.params = params
        self._attach_mixer()
        self._on_open(params)
        return pcm

    def _on_open(self, params: DeviceParams) -> None:
        """Reset per-stream state (converters) for a freshly opened device."""

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        pcm = await asyncio.to_thread(self._open)
        self._thread = threading.Thread(target=self._run, args=(pcm,), daemon=True,
                                        name=f"alsa-{self.kind}:{self.device}")
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 2.0)
            if thread.is_alive():
                log.warning("%s %s: device thread did not finish in 2 s", self.kind,
                            self.device)
        self._after_stop()

    def _wake(self) -> None:
        """Release the device thread if it waits for something (speaker: its buffer)."""

    def _after_stop(self) -> None:
        with self._mixer_lock:
            mixer, self._mixer = self._mixer, None
        if mixer is not None:
            mixer.close()

    async def __aenter__(self) -> AlsaStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _post(self, name: str, data: dict[str, Any]) -> None:
        hand_to_loop(self._loop, self._emit, name, data)

    def _run(self, pcm: Any) -> None:
        name_this_thread(f"alsa-{self.kind}")
        lost_at = opened_at = time.monotonic()
        failures = 0  # reopen attempts since the stream last ran well
        try:
            while not self._stopping.is_set():
                if pcm is None:
                    if lost_at - opened_at > STABLE_S:
                        failures = 0
                    pcm, failures = self._reopen(failures)
                    if pcm is None:
                        break
                    opened_at = time.monotonic()
                    self.counters["reopens"] += 1
                    self._lost = False
                    downtime = opened_at - lost_at
                    log.warning("%s %s: restored after %.1f s", self.kind, self.device,
                                downtime)
                    self._post("device-restored", {"kind": self.kind, "device": self.device,
                                                   "downtime_s": round(downtime, 3)})
                try:
                    self._io(pcm)
                except Exception as exc:
                    if not isinstance(exc, StreamBroken):
                        # A bug, not the device; still keep the audio alive.
                        log.exception("%s %s: I/O failed", self.kind, self.device)
                    lost_at = time.monotonic()
                    self._lost = True
                    log.warning("%s %s: lost (%s); reopening", self.kind, self.device, exc)
                    _close_quietly(pcm)
                    pcm = None
                    self._post("device-lost", {"kind": self.kind, "device": self.device,
                                               "error": str(exc)})
        except Exception:
            log.exception("%s %s: device thread failed", self.kind, self.device)
        finally:
            if pcm is not None:
                _close_quietly(pcm)

    def _reopen(self, failures: int) -> tuple[Any, int]:
        """Reopen with backoff: ``(pcm, failures)``, or ``(None, n)`` when stopping.

        ``failures`` carries over from earlier losses so that a device that breaks
        again right after each reopen is retried ever more slowly, not 10 times a second.
        """
        while True:
            delay = self._backoff[min(failures, len(self._backoff) - 1)]
            if self._stopping.wait(delay):
                return None, failures
            failures += 1
            try:
                return self._open(), failures
            except DeviceError as exc:
                level = logging.INFO if failures == 1 else logging.DEBUG
                log.log(level, "%s %s: reopen attempt %d failed: %s", self.kind,
                        self.device, failures, exc)

    def _io(self, pcm: Any) -> None:
        raise NotImplementedError

    def _broken(self, exc: BaseException) -> StreamBroken:
        return StreamBroken(f"ALSA {self.kind} {self.device!r}: {exc}")

    @property
    def lost(self) -> bool:
        """True while the device is gone and being reopened."""
        return self._lost


def _close_quietly(pcm: Any) -> None:
    try:
        pcm.close()
    except Exception as exc:
        log.debug("closing PCM: %s", exc)
