"""Local recording: the shared encoders' packets written into segment files.

Each segment is a complete MKV or fragmented MP4 that starts on a keyframe (one is
requested at every boundary), so a power cut loses at most the segment being written,
and even that one stays readable up to its last fragment. Files are named
``<room>-<UTC start>.mkv``; the oldest are deleted when the total passes
``record.max_total_mb``, and recording stops (``recording-stopped`` with ``reason``
``disk-full``) when free space falls below ``record.min_free_mb``.

Events: ``recording-started {file}``, ``recording-segment {file, duration, bytes}`` for
every finished segment, ``recording-stopped {reason, files}``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.base import Emit, null_emit
from services.media.audio_encoder import SharedAudioEncoder
from services.media.encoder import SharedVideoEncoder
from services.media.mux import FRAGMENTED_MP4, MuxError, PacketMuxer
from services.media.output import EncodedInput, WriterThread
from services.media.packets import EncodedPacket

log = logging.getLogger(__name__)

MB = 1024 * 1024
FORMATS = {"mkv": ("matroska", {}), "mp4": ("mp4", FRAGMENTED_MP4)}
DISK_CHECK_INTERVAL = 2.0
#: After a stop request, the recorder writes until this long passes without a packet
#: (what was captured before the request has then come through).
STOP_QUIET = 0.5
#: A stop gives up on a writer stuck this long (a dead disk) and abandons the file.
STOP_TIMEOUT = 15.0
#: Packets are handed to the writer thread in batches of this many seconds.
LINGER = 0.1
#: A file write can stall for seconds when the disk is busy: about 12 s of packets
#: (video and audio) are held before the oldest are dropped.
RECORD_QUEUE_PACKETS = 1000


def segment_name(label: str, started: dt.datetime, ext: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._-") or "edgeroom"
    return f"{safe}-{started.strftime('%Y%m%dT%H%M%SZ')}.{ext}"


class Recorder:
    """Records while started; :meth:`start` and :meth:`stop` return a status dict."""

    def __init__(self, video: SharedVideoEncoder, audio: SharedAudioEncoder | None, *,
                 directory: Path, fmt: str = "mkv", segment_seconds: float = 300,
                 max_total_mb: int = 2048, min_free_mb: int = 200,
                 label: Callable[[], str] = lambda: "edgeroom",
                 emit: Emit = null_emit) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"record.format must be mkv or mp4, got {fmt!r}")
        self.directory = directory
        self.fmt = fmt
        self.segment_seconds = segment_seconds
        self.max_total_mb = max_total_mb
        self.min_free_mb = min_free_mb
        self._label = label
        self._emit = emit
        self._input = EncodedInput("recorder", video, audio, RECORD_QUEUE_PACKETS)
        self._task: asyncio.Task[None] | None = None
        self._muxer: PacketMuxer | None = None
        self._writer: WriterThread | None = None
        self._boundary_requested = False
        self._last_disk_check = 0.0
        self._started_at: float | None = None
        self._stop_at: float | None = None
        self.files: list[str] = []
        self.stop_reason: str | None = None

    def __repr__(self) -> str:
        return f"<Recorder {self.fmt} recording={self.recording} files={len(self.files)}>"

    @property
    def recording(self) -> bool:
        return self._task is not None and not self._task.done()

    def status(self) -> dict[str, Any]:
        muxer = self._muxer
        return {
            "recording": self.recording,
            "format": self.fmt,
            "directory": str(self.directory),
            "file": Path(muxer.target).name if muxer is not None else None,
            "segment_duration": round(muxer.duration, 2) if muxer is not None else 0.0,
            "elapsed": round(time.monotonic() - self._started_at, 1)
            if self._started_at is not None and self.recording else 0.0,
            "files": [Path(f).name for f in self.files],
            "stop_reason": self.stop_reason,
        }

    async def start(self) -> dict[str, Any]:
        if self.recording:
            return self.status()
        await asyncio.to_thread(self.directory.mkdir, mode=0o700, parents=True,
                                exist_ok=True)  # private
        await asyncio.to_thread(self._check_disk)  # may delete old recordings: off the loop
        self.files = []
        self.stop_reason = None
        self._input.reset()
        self._stop_at = None
        self._writer = WriterThread("recorder")
        self._input.attach()
        self._started_at = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="recorder")
        log.info("recorder: stopped -> recording (%s in %s)", self.fmt, self.directory)
        return self.status()

    async def stop(self, reason: str = "requested") -> dict[str, Any]:
        task = self._task
        if task is None:
            return self.status()
        if not task.done():
            self.stop_reason = reason
            # the task writes what was captured until now (still being encoded, maybe),
            # then finishes
            self._stop_at = time.monotonic()
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
            except TimeoutError:
                task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._task = None
        return self.status()

    async def _run(self) -> None:
        reason = "requested"
        try:
            while True:
                stop_at = self._stop_at
                if stop_at is not None and time.monotonic() - stop_at > STOP_TIMEOUT - 2:
                    break
                try:
                    first = await asyncio.wait_for(self._input.sub.get(), STOP_QUIET)
                except TimeoutError:
                    if self._stop_at is not None:
                        break  # stopping, and nothing more is coming
                    continue
                except EOFError:
                    break
                await asyncio.sleep(LINGER)  # one writer hand-over per batch, not per packet
                batch = [first, *self._input.sub.drain()]
                stop_at = self._stop_at
                if stop_at is not None:
                    # up to the stop request; a frame captured after it ends the recording
                    done = any(p.kind == "video" and p.captured_at >= stop_at for p in batch)
                    batch = [p for p in batch if p.captured_at < stop_at]
                    await self._handle(self._input.learn(batch))
                    if done:
                        break
                    continue
                await self._handle(self._input.learn(batch))
                if time.monotonic() - self._last_disk_check >= DISK_CHECK_INTERVAL:
                    await asyncio.to_thread(self._check_disk)
        except asyncio.CancelledError:
            reason = self.stop_reason or "cancelled"
            raise
        except DiskFull as exc:
            reason = "disk-full"
            log.warning("recorder: %s", exc)
        except MuxError as exc:
            reason = "write-error"
            log.error("recorder: %s", exc)
        finally:
            self._input.detach()
            await self._close_segment()
            writer, self._writer = self._writer, None
            if writer is not None:
                await writer.aclose()
            reason = self.stop_reason = self.stop_reason or reason
            log.info("recorder: recording -> stopped (%s)", reason)
            self._emit("recording-stopped", {"reason": reason,
                                             "files": [Path(f).name for f in self.files]})

    async def _handle(self, packets: list[EncodedPacket]) -> None:
        pending: list[EncodedPacket] = []
        for packet in packets:
            if packet.kind == "video" and self._muxer is not None:
                frame = self._input.video.frame_seconds or 1 / 30
                # the segment's length counts to the end of its last frame
                length = packet.captured_at - (self._muxer.origin or packet.captured_at)
                if packet.keyframe and length >= self.segment_seconds - frame / 2:
                    await self._write(pending)
                    pending = []
                    await self._close_segment()
                elif (length + 1.5 * frame >= self.segment_seconds
                      and not self._boundary_requested):
                    # the frame after the request becomes the keyframe: ask one frame early
                    self._boundary_requested = True
                    self._input.video.request_keyframe("recording segment boundary")
            if self._muxer is None:
                if packet.kind != "video" or not packet.keyframe:
                    continue
                await self._open_segment()
            pending.append(packet)
        await self._write(pending)

    async def _write(self, packets: list[EncodedPacket]) -> None:
        muxer, writer = self._muxer, self._writer
        if packets and muxer is not None and writer is not None:
            await writer.run(_write_all, muxer, packets)

    async def _open_segment(self) -> None:
        await asyncio.to_thread(self._check_disk)  # checks the space, deletes old recordings
        name = segment_name(self._label(), dt.datetime.now(dt.UTC), self.fmt)
        path = self.directory / name
        n = 1
        while path.exists() or str(path) in self.files:
            path = self.directory / f"{Path(name).stem}-{n}.{self.fmt}"
            n += 1
        fmt, options = FORMATS[self.fmt]
        assert self._writer is not None
        self._muxer = await self._writer.run(
            lambda: PacketMuxer(str(path), fmt, self._input.templates,
                                with_audio=self._input.audio is not None, options=options,
                                frame_seconds=self._input.video.frame_seconds))
        self._boundary_requested = False
        self.files.append(str(path))
        if len(self.files) == 1:
            self._emit("recording-started", {"file": path.name, "format": self.fmt})
        log.info("recorder: segment %s", path.name)

    async def _close_segment(self) -> None:
        muxer, self._muxer = self._muxer, None
        if muxer is None:
            return
        if self._writer is not None:
            await self._writer.run(muxer.close)
        else:
            muxer.close()
        self._emit("recording-segment", {"file": Path(muxer.target).name,
                                         "duration": round(muxer.duration, 2),
                                         "bytes": muxer.bytes_written})

    def _check_disk(self) -> None:
        self._last_disk_check = time.monotonic()
        free = shutil.disk_usage(self.directory).free
        if free < self.min_free_mb * MB:
            raise DiskFull(f"only {free // MB} MB free in {self.directory}, "
                           f"record.min_free_mb is {self.min_free_mb}")
        self._rotate()

    def _rotate(self) -> None:
        """Delete the oldest recordings while the total is above ``max_total_mb``."""
        current = self._muxer.target if self._muxer is not None else None
        found = []
        for entry in os.scandir(self.directory):
            if entry.is_file() and entry.name.endswith((".mkv", ".mp4")):
                st = entry.stat()
                found.append((st.st_mtime, entry.path, st.st_size))
        total = sum(size for _, _, size in found)
        for _, path, size in sorted(found):
            if total <= self.max_total_mb * MB:
                break
            if path == current:
                continue
            try:
                os.unlink(path)
            except OSError as exc:
                log.warning("recorder: cannot delete %s: %s", path, exc)
                continue
            total -= size
            log.info("recorder: deleted %s (over record.max_total_mb)", Path(path).name)
            self._emit("recording-deleted", {"file": Path(path).name})


class DiskFull(MuxError):
    """Free space fell below ``record.min_free_mb``."""

    code = "DISK_FULL"


def _write_all(muxer: PacketMuxer, packets: list[EncodedPacket]) -> None:
    for packet in packets:
        muxer.write(packet)
