"""RTMP live streaming: the shared encoders' H.264 and AAC, copied into FLV, pushed.

Nothing is encoded here. When the server drops the connection (or cannot be reached),
the streamer reconnects by itself with a growing delay, and resumes at the next keyframe
(requested at once). Stop works at any moment, also while a reconnect is pending.

Events: ``stream-started {url}`` (each time the server accepts the stream),
``stream-reconnecting {attempt, delay, error}``, ``stream-stopped {reason}``.
URLs are reported with the stream key hidden.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from drivers.base import Emit, null_emit
from services.media.audio_encoder import SharedAudioEncoder
from services.media.encoder import SharedVideoEncoder
from services.media.mux import MuxError, PacketMuxer
from services.media.netout import NetworkOutput
from services.media.output import EncodedInput, WriterThread
from services.media.packets import EncodedPacket

log = logging.getLogger(__name__)

#: Delays between reconnect attempts (seconds); the last one repeats.
BACKOFF = (0.3, 1.0, 2.0, 4.0, 8.0)
BITRATE_WINDOW = 2.0
#: A connect or a write that makes no progress this long counts as a dropped connection.
WRITE_TIMEOUT = 10.0
#: How long a clean close (the FLV trailer, the unpublish) may take before it is cut.
CLOSE_TIMEOUT = 2.0
#: Packets go to the writer thread in batches of this many seconds (a wake-up per
#: packet costs more CPU than the muxing itself; RTMP viewers are seconds behind anyway).
LINGER = 0.05


def redact_url(url: str) -> str:
    """``rtmp://host/app/***``: the stream key (last path part) and any password hidden."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    path = parts.path.rsplit("/", 1)[0] if parts.path.count("/") > 1 else parts.path
    return f"{parts.scheme}://{host}{path}/***"


class RtmpStreamer:
    """Pushes to one RTMP URL while started; state is idle, connecting, live or reconnecting."""

    def __init__(self, video: SharedVideoEncoder, audio: SharedAudioEncoder | None, *,
                 emit: Emit = null_emit, backoff: tuple[float, ...] = BACKOFF) -> None:
        self._input = EncodedInput("rtmp", video, audio)
        self._emit = emit
        self._backoff = backoff
        self._task: asyncio.Task[None] | None = None
        self._url: str | None = None
        self._writer: WriterThread | None = None
        self._muxer: PacketMuxer | None = None
        self._sink: NetworkOutput | None = None
        self._window: deque[tuple[float, int]] = deque()
        self.state = "idle"
        self.connects = 0
        self.reconnects = 0
        self.bytes_sent = 0
        #: video packets the server accepted: in total, and over the current connection
        self.video_packets_sent = 0
        self.connection_video_packets = 0
        self.last_error: str | None = None
        self._live_since: float | None = None
        #: what an rtmps:// server's certificate is checked against (None: the system's
        #: CAs); taken at each connect
        self.ca_file: str | None = None

    def __repr__(self) -> str:
        url = redact_url(self._url) if self._url else None
        return f"<RtmpStreamer {self.state} {url} connects={self.connects}>"

    @property
    def streaming(self) -> bool:
        return self._task is not None and not self._task.done()

    def _set_state(self, new: str) -> None:
        if new != self.state:
            log.info("rtmp: %s -> %s", self.state, new)
            self.state = new

    @property
    def bitrate_kbps(self) -> float:
        """What went out over the last two seconds."""
        now = time.monotonic()
        while self._window and now - self._window[0][0] > BITRATE_WINDOW:
            self._window.popleft()
        return round(sum(n for _, n in self._window) * 8 / BITRATE_WINDOW / 1000, 1)

    def status(self) -> dict[str, Any]:
        return {
            "streaming": self.streaming,
            "state": self.state,
            "url": redact_url(self._url) if self._url else None,
            "bitrate_kbps": self.bitrate_kbps if self.state == "live" else 0.0,
            "uptime": round(time.monotonic() - self._live_since, 1)
            if self._live_since is not None and self.state == "live" else 0.0,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "bytes_sent": self.bytes_sent,
            "last_error": self.last_error,
        }

    async def start(self, url: str) -> dict[str, Any]:
        if not url.startswith(("rtmp://", "rtmps://")):
            raise ValueError(f"not an RTMP URL: {redact_url(url)}")
        if self.streaming:
            if url == self._url:
                return self.status()
            await self.stop("url-changed")
        self._url = url
        self.reconnects = 0
        self.last_error = None
        self._set_state("connecting")
        self._task = asyncio.create_task(self._run(url), name="rtmp")
        return self.status()

    async def stop(self, reason: str = "requested") -> dict[str, Any]:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._emit("stream-stopped", {"reason": reason})
        return self.status()

    async def _run(self, url: str) -> None:
        attempt = 0
        try:
            while True:
                self._writer = WriterThread("rtmp")
                self.connection_video_packets = 0
                self._input.reset()
                self._input.attach()
                try:
                    await self._push(url)
                    error = "the stream ended"
                except MuxError as exc:
                    error = str(exc)
                finally:
                    await self._teardown()
                attempt = attempt + 1 if self.state != "live" else 1
                self.last_error = error
                self.reconnects += 1
                delay = self._backoff[min(attempt - 1, len(self._backoff) - 1)]
                log.warning("rtmp: %s; reconnecting in %.1f s (attempt %d)", error, delay,
                            attempt)
                self._set_state("reconnecting")
                self._emit("stream-reconnecting", {"attempt": attempt, "delay": delay,
                                                   "error": error})
                await asyncio.sleep(delay)
                self._set_state("connecting")
        except asyncio.CancelledError:
            raise
        finally:
            self._set_state("idle")

    async def _push(self, url: str) -> None:
        """Connect at the first keyframe, then copy packets until an error."""
        writer = self._writer
        assert writer is not None
        while True:
            batch = await self._input.sub.get_batch(LINGER)
            packets = self._input.learn(batch)
            if not packets:
                continue
            try:
                if self._muxer is None:
                    self._sink = NetworkOutput(url, timeout=WRITE_TIMEOUT,
                                               close_timeout=CLOSE_TIMEOUT,
                                               ca_file=self.ca_file)
                    self._muxer = await asyncio.wait_for(
                        writer.run(self._connect, self._sink), WRITE_TIMEOUT + 2.0)
                muxer = self._muxer
                before = muxer.video_packets
                # the connection gives up by itself after WRITE_TIMEOUT; this is a backstop
                sent = await asyncio.wait_for(writer.run(_write_all, muxer, packets),
                                              WRITE_TIMEOUT + 2.0)
            except TimeoutError:
                raise MuxError(f"no progress for {WRITE_TIMEOUT:g} s") from None
            self.video_packets_sent += muxer.video_packets - before
            self.connection_video_packets = muxer.video_packets
            if sent and self.state != "live":
                self.connects += 1
                self._live_since = time.monotonic()
                self._set_state("live")
                self._emit("stream-started", {"url": redact_url(url)})
            self.bytes_sent += sent
            self._window.append((time.monotonic(), sent))

    def _connect(self, sink: NetworkOutput) -> PacketMuxer:
        """Connect and publish (in the writer thread; the GIL is free meanwhile)."""
        sink.open()
        muxer = PacketMuxer(sink, "flv", self._input.templates,
                            with_audio=self._input.audio is not None,
                            frame_seconds=self._input.video.frame_seconds,
                            options={"flush_packets": "1"})
        if sink.aborted:  # stopped while connecting: nobody will close it later
            muxer.close()
            raise MuxError("stopped")
        return muxer

    async def _teardown(self) -> None:
        self._input.detach()
        muxer, self._muxer = self._muxer, None
        writer, self._writer = self._writer, None
        sink, self._sink = self._sink, None
        if muxer is None and sink is not None:
            sink.abort()  # a connect in progress ends now
        if writer is not None:
            if muxer is not None:
                try:
                    await asyncio.wait_for(writer.run(muxer.close), CLOSE_TIMEOUT)
                except (TimeoutError, RuntimeError):
                    # a write or the goodbye is stuck on a silent server: end it now
                    log.warning("rtmp: the connection did not close cleanly")
                    muxer.abort()
                    try:
                        await asyncio.wait_for(writer.run(muxer.close), CLOSE_TIMEOUT)
                    except (TimeoutError, RuntimeError):
                        pass
            writer.close(wait=False)


def _write_all(muxer: PacketMuxer, packets: list[EncodedPacket]) -> int:
    sent = 0
    for packet in packets:
        if muxer.write(packet):
            sent += len(packet.data)
    return sent
