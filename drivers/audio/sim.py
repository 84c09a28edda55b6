"""Simulated mic and speaker, paced in real time on the monotonic clock.

``SimMic`` plays ``sim.mic`` (``tone:<hz>``, ``silence`` or a looped WAV file) as if a
microphone captured it: frame ``n`` covers ``start + n*20ms`` onwards and is ready 20 ms
later, so there is no drift however long it runs. A consumer that falls more than
``queue_frames`` behind loses the oldest frames, as with a real device.

``SimSpeaker`` is a playout clock: every 20 ms of its own clock it pulls one frame from
its source (the room's mixer; or, with no source set, takes one from the small buffer
``write`` fills), silence when there is none, and appends it to a WAV file in the state
dir, which is rotated at a size cap. The file is therefore a faithful timeline of what a
speaker would have played. It models an ideal device: a block is heard the moment it is
pulled (a real card adds its buffer).

Both clocks can be made to run fast or slow against the system clock (``drift_ppm``,
from ``sim.mic_drift_ppm`` and ``sim.speaker_drift_ppm``), as two crystals do, so that
what drift does to the room's delay can be reproduced.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.audio.base import FRAME_MS, FRAME_SAMPLES, MIC_QUEUE_FRAMES, SAMPLE_RATE, PcmFrame
from drivers.audio.pcm import (
    FRAME_BYTES,
    SILENCE_FRAME,
    FrameBuffer,
    PlayoutListener,
    PlayoutTaps,
    apply_gain,
    level_dbfs,
    notify_playout,
    percent_to_gain,
    saturate_s16,
    to_mono_frame,
)
from drivers.audio.wavfile import GrowingWav, load_wav_mono48k
from drivers.errors import DeviceError, DeviceNotFound
from drivers.lazy import lazy_module
from drivers.threadname import name_this_thread

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)

FRAME_S = FRAME_MS / 1000.0
TONE_AMPLITUDE = 0.5  # of full scale: -6 dBFS peak


def resolve_sim_path(value: str, state_dir: Path) -> Path:
    """A sim WAV path: absolute, else in the state dir, else relative to the working dir."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    in_state = state_dir / path
    if in_state.exists() or not path.exists():
        return in_state
    return path.resolve()


class _Source:
    """Sample generator for frame ``n`` of the sim mic."""

    def __init__(self, spec: str, state_dir: Path) -> None:
        self.spec = spec
        self._tone_hz: float | None = None
        self._loop: bytes | None = None
        #: a tone of whole hertz repeats every ``_period`` frames: those frames, at a gain
        self._frames: dict[tuple[int, float], bytes] = {}
        self._period = 0
        if spec == "silence":
            return
        if spec.startswith("tone:"):
            try:
                hz = float(spec[5:])
            except ValueError:
                hz = -1.0
            if not 0 < hz < SAMPLE_RATE / 2:
                raise ValueError(f"sim.mic: tone frequency must be 0 < hz < "
                                 f"{SAMPLE_RATE // 2}, got {spec!r}")
            self._tone_hz = hz
            if hz == int(hz):
                per_second = 1000 // FRAME_MS
                self._period = per_second // math.gcd(int(hz), per_second)
            return
        path = resolve_sim_path(spec, state_dir)
        if not path.is_file():
            places = str(path) if Path(spec).is_absolute() else (
                f"{state_dir / spec} or {Path.cwd() / spec}")
            raise DeviceNotFound(f"sim.mic: WAV file {spec!r} not found (looked for {places})")
        data = load_wav_mono48k(path)
        while len(data) < FRAME_BYTES:  # a very short file still loops cleanly
            data += data
        self._loop = data

    def frame_at_gain(self, n: int, gain: float) -> bytes:
        """Frame ``n`` scaled by ``gain``; a tone's frames are made once per gain."""
        if not self._period:
            return apply_gain(self.frame(n), gain)
        key = (n % self._period, gain)
        samples = self._frames.get(key)
        if samples is None:
            if len(self._frames) >= 4 * self._period:  # gains changed: start over
                self._frames.clear()
            samples = self._frames[key] = apply_gain(self.frame(n), gain)
        return samples

    def frame(self, n: int) -> bytes:
        if self._tone_hz is not None:
            start = n * FRAME_SAMPLES
            # Phase from the absolute sample number, wrapped to one cycle first, so
            # there is no drift and no precision loss however long it runs.
            cycles = (start * self._tone_hz / SAMPLE_RATE) % 1.0
            t = np.arange(FRAME_SAMPLES, dtype=np.float64) * (self._tone_hz / SAMPLE_RATE)
            x = np.sin(2.0 * math.pi * (cycles + t)) * (32767.0 * TONE_AMPLITUDE)
            return bytes(saturate_s16(x).astype("<i2").tobytes())
        if self._loop is not None:
            size = len(self._loop)
            offset = (n * FRAME_BYTES) % size
            chunk = self._loop[offset: offset + FRAME_BYTES]
            if len(chunk) < FRAME_BYTES:
                chunk += self._loop[: FRAME_BYTES - len(chunk)]
            return chunk
        return SILENCE_FRAME


class SimMic:
    """A :class:`~drivers.audio.base.MicSource` playing a tone, silence or a WAV file."""

    def __init__(self, source: str = "tone:440", *, state_dir: Path = Path("."),
                 gain: int = 100, queue_frames: int = MIC_QUEUE_FRAMES,
                 drift_ppm: float = 0.0) -> None:
        if queue_frames < 1:
            raise ValueError("queue_frames must be >= 1")
        if not -100_000 < drift_ppm < 100_000:
            raise ValueError(f"drift_ppm must be within +-100000, got {drift_ppm}")
        self._period = FRAME_S / (1 + drift_ppm * 1e-6)  # a fast clock: shorter frames
        self._source = _Source(source, state_dir)
        self._gain = percent_to_gain(gain)
        self._queue_frames = queue_frames
        self._start: float | None = None
        self._next = 0
        self._base = 0
        self._stopped = False
        self._frames = 0
        self._dropped = 0

    def __repr__(self) -> str:
        state = "stopped" if self._stopped or self._start is None else "running"
        return (f"<SimMic {self._source.spec!r} {state} frames={self._frames} "
                f"dropped={self._dropped}>")

    async def start(self) -> None:
        """Start (or restart after :meth:`stop`) the frame clock."""
        if self._start is None or self._stopped:
            self._base += self._next  # frame indexes keep counting up across restarts
            self._start = time.monotonic()
            self._next = 0
            self._stopped = False
            # the frame clock's origin, for benchmarks that time sound from mic to ear
            log.info("sim mic: %s (frame %d at %.6f monotonic)", self._source.spec,
                     self._base, self._start)

    async def read(self) -> PcmFrame:
        if self._start is None and not self._stopped:
            raise RuntimeError("SimMic.read() before start()")
        if self._stopped or self._start is None:
            raise EOFError("mic stopped")
        start = self._start
        period = self._period
        ready = math.floor((time.monotonic() - start) / period)  # frames complete now
        oldest = ready - self._queue_frames
        if self._next < oldest:
            self._dropped += oldest - self._next
            self._next = oldest
        n = self._next
        delay = start + (n + 1) * period - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._stopped:
            raise EOFError("mic stopped")
        self._next = n + 1
        self._frames += 1
        samples = self._source.frame_at_gain(self._base + n, self._gain)
        return PcmFrame(samples, start + n * period, self._base + n)

    def set_gain(self, percent: int) -> None:
        self._gain = percent_to_gain(percent)

    @property
    def stats(self) -> dict[str, int]:
        return {"frames": self._frames, "dropped": self._dropped, "overruns": 0,
                "reopens": 0}

    async def stop(self) -> None:
        self._stopped = True

    async def __aenter__(self) -> SimMic:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SimSpeaker(PlayoutTaps):
    """A :class:`~drivers.audio.base.SpeakerSink` that records what it plays to a WAV.

    ``path`` is rotated to ``<stem>.1.wav`` when it would exceed ``max_bytes``. An
    underrun is a gap of silence between two frames of a stream (a pause longer than
    ``idle_s`` starts a new stream and is not counted).
    """

    def __init__(self, path: Path, *, max_bytes: int = 50 * 1024 * 1024, volume: int = 100,
                 buffer_frames: int = 3, idle_s: float = 0.5,
                 sync_every_frames: int = 10, drift_ppm: float = 0.0) -> None:
        if max_bytes < 44 + FRAME_BYTES:
            raise ValueError(f"max_bytes must be at least {44 + FRAME_BYTES}")
        if not -100_000 < drift_ppm < 100_000:
            raise ValueError(f"drift_ppm must be within +-100000, got {drift_ppm}")
        self._period = FRAME_S / (1 + drift_ppm * 1e-6)
        self.path = path
        self._max_bytes = max_bytes
        self._gain = percent_to_gain(volume)
        self._buffer = FrameBuffer(buffer_frames)
        self._idle_frames = max(1, round(idle_s / FRAME_S))
        self._sync_every = max(1, sync_every_frames)
        self._listeners: list[PlayoutListener] = []
        self._wav: GrowingWav | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._level = -math.inf
        self._frames = 0
        self._slots = 0
        self._underruns = 0
        self._rotations = 0
        self._write_errors = 0
        self._failing = False

    def __repr__(self) -> str:
        state = "running" if self._thread else "stopped"
        return (f"<SimSpeaker {str(self.path)!r} {state} frames={self._frames} "
                f"underruns={self._underruns} level={self._level:.1f} dBFS>")

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        try:
            self._wav = await asyncio.to_thread(self._open_wav)
        except OSError as exc:
            raise DeviceError(f"sim speaker: cannot write {str(self.path)!r}: {exc}") from exc
        log.info("sim speaker: writing %s", self.path)
        self._thread = threading.Thread(target=self._run, name="sim-speaker", daemon=True)
        self._thread.start()

    def set_volume(self, percent: int) -> None:
        self._gain = percent_to_gain(percent)

    @property
    def stats(self) -> dict[str, int]:
        return {"frames": self._frames, "dropped": self._buffer.dropped,
                "underruns": self._underruns, "reopens": 0, "slots": self._slots,
                "rotations": self._rotations, "write_errors": self._write_errors,
                "queued": len(self._buffer)}

    async def stop(self) -> None:
        self._stopping.set()
        self._buffer.wake()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 2.0)
        wav, self._wav = self._wav, None
        if wav is not None:
            await asyncio.to_thread(wav.close)

    async def __aenter__(self) -> SimSpeaker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _open_wav(self) -> GrowingWav:
        """A fresh WAV; what an earlier run left there becomes ``<stem>.1.wav``."""
        if self.path.is_file() and self.path.stat().st_size > 44:
            os.replace(self.path, self._old_path)
        return GrowingWav(self.path)

    @property
    def _old_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".1.wav")

    def _rotate(self) -> None:
        wav = self._wav
        assert wav is not None
        self._wav = None
        wav.close()
        os.replace(self.path, self._old_path)
        self._wav = GrowingWav(self.path)
        self._rotations += 1
        log.info("sim speaker: rotated %s at %d bytes", self.path, wav.size)

    def _next_frame(self, due: float) -> PcmFrame | None:
        source = self._source
        if source is None:
            return self._buffer.get(timeout=0)
        try:
            return source(FRAME_SAMPLES, due)
        except Exception:
            log.exception("sim speaker: its source failed; playing silence")
            return None

    def _run(self) -> None:
        name_this_thread()
        start = time.monotonic()
        slot = 0
        gap = -1  # silent slots since the last frame; -1 = no stream yet
        try:
            while True:
                due = start + slot * self._period
                delay = due - time.monotonic()
                if delay > 0 and self._stopping.wait(delay):
                    break
                if self._stopping.is_set():
                    break
                if -delay > 1.0:  # the thread was starved (suspend?): restart the clock
                    start, slot, due = time.monotonic(), 0, time.monotonic()
                frame = self._next_frame(due)
                if frame is None:
                    samples = SILENCE_FRAME
                    if gap >= 0:
                        gap += 1
                else:
                    samples = apply_gain(to_mono_frame(frame), self._gain)
                    if 0 < gap <= self._idle_frames:
                        self._underruns += 1
                    gap = 0
                self._play(samples, frame, due)
                slot += 1
        except Exception:
            log.exception("sim speaker: playout thread failed")

    def _record(self, samples: bytes) -> None:
        """Append one slot to the WAV; a full or failing disk is logged, not fatal."""
        try:
            wav = self._wav
            if wav is None:
                self._wav = wav = GrowingWav(self.path)
            if wav.size + len(samples) > self._max_bytes:
                self._rotate()
                wav = self._wav
                assert wav is not None
            wav.write(samples)
            if self._slots % self._sync_every == 0:
                wav.sync()
            self._failing = False
        except OSError as exc:
            self._write_errors += 1
            if not self._failing:
                log.warning("sim speaker: cannot write %s: %s", self.path, exc)
            self._failing = True
            self._reset_wav()

    def _reset_wav(self) -> None:
        wav, self._wav = self._wav, None  # reopened (truncated) at the next slot
        if wav is not None:
            try:
                wav.close()
            except OSError:
                pass

    def _play(self, samples: bytes, frame: PcmFrame | None, due: float) -> None:
        self._slots += 1
        self._record(samples)
        self._level = level_dbfs(samples)
        if frame is not None:
            index = self._frames
            self._frames += 1
            if self._listeners:
                notify_playout(self._listeners, PcmFrame(samples, frame.captured_at, index),
                               due, self._listener_failed)

    def _listener_failed(self, exc: BaseException) -> None:
        log.warning("sim speaker: playout listener failed: %r", exc)
