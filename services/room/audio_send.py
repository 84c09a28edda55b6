"""The mic's RTP send, off the event loop: no hop to the loop per frame.

When the room's mic track (:class:`~services.room.tracks.MicTrack`) has a mic that hands
its frames to a thread (``set_thread_sink``: the sim mic's capture thread, the ALSA
device thread, the shared mic's tee on either), or no mic at all (a listener sends paced
silence), its sender does not pull it on the loop. :func:`send_audio_off_loop` starts an
:class:`AudioRtpSink` instead: one thread, ``audio-send``, fed by the mic's capture
thread through a short queue (a ``deque`` and an event; no loop in between). For each
frame it applies the session's gate (mic open, mute, volume: read per frame), mixes the
playbacks in, encodes Opus, builds the RTP header (MID, abs-send-time and the RFC 6464
level the mic path measured), protects the packet through the transport's locked SRTP
session (:mod:`services.room.srtp_lock`) and sends it on a duplicate of the nominated
ICE pair's socket. While the mic is not open for the room, the thread paces silence on
its own clock, as the track does on the loop.

Why a thread of its own rather than the capture thread: the capture thread must be back
at the device before its next period (an ALSA overrun is a gap), and the encode, a
blocked ``sendto`` or a wait for the GIL must never make it late. Handing a frame over
costs one event set; the send thread then holds the GIL for one gate call, a numpy
volume and mix when they apply, the libopus call (which releases it) and one header.

The loop only sets the thread up, watches the connection twice a second and takes it
down. RTCP stays on the loop: sender reports read the counters this thread updates
under the sender's counter lock, receiver reports reach the encoder's expected loss
(FEC) through the track (applied by this thread before its next encode), and NACKed
packets come from the history this thread fills.

:meth:`AudioRtpSink.close` takes the sink's lock, held for a whole frame: once it
returns nothing more is encoded or sent. A send the kernel refuses drops that packet and
is counted; it never ends the thread.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
import time
from collections import deque
from struct import Struct
from typing import Any

from aiortc import clock
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions

from drivers.audio.base import FRAME_SAMPLES, MIC_QUEUE_FRAMES, SAMPLE_RATE, PcmFrame
from drivers.threadname import name_this_thread
from services.media.budget import AUDIO_DEADLINE
from services.room.mic_frames import SendFrame, mic_frame, silent_frame
from services.room.pair_socket import PairSocket
from services.room.srtp_lock import LockedSrtpSession

log = logging.getLogger(__name__)

_HEADER = Struct("!BBHLL")
_EXT_HEADER = Struct("!HH")
_DTLS_CONNECTED = DtlsState.CONNECTED
_DROPPABLE = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
#: How long the thread waits for a mic frame before it looks at the gate again (s).
WAIT_S = 0.1
#: How often the loop checks the connection and the track (s).
WATCH_S = 0.5


class AudioRtpSink:
    """Sends one mic track's audio on the ``audio-send`` thread (see the module).

    ``sender`` is the :class:`~services.room.rtp_send.FrameRtpSender` of the stream (its
    SSRC, header extensions, history and counters); ``track`` the
    :class:`~services.room.tracks.MicTrack` (gate, mix, encoder).
    """

    def __init__(self, sender: Any, dtls: Any, session: LockedSrtpSession, track: Any,
                 payload_type: int, sequence_number: int, timestamp_origin: int) -> None:
        self.sender = sender
        self.track = track
        self._dtls = dtls
        self._session = session
        self._payload_type = payload_type
        self._sequence_number = sequence_number
        self._timestamp_origin = timestamp_origin
        self._extensions_map = sender._RTCRtpSender__rtp_header_extensions_map
        self._mid = sender._RTCRtpSender__mid
        self._socket = PairSocket(dtls)
        self._inbox: deque[PcmFrame] = deque(maxlen=MIC_QUEUE_FRAMES)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        #: loss (percent) a receiver report gave, for the encoder before its next frame
        self.expected_loss: float | None = None
        #: why the sink stopped on its own (the loop then ends the sender's RTP run)
        self.failed: str | None = None
        self.frames = 0
        self.packets = 0
        self.dropped = 0
        self.send_errors = 0
        self.frames_dropped = 0
        self.threads: set[str] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.failed or "open"
        return (f"<AudioRtpSink {state} frames={self.frames} packets={self.packets} "
                f"dropped={self.dropped} errors={self.send_errors}>")

    @property
    def next_sequence_number(self) -> int:
        return self._sequence_number

    def offer(self, frame: PcmFrame) -> None:
        """A mic frame (the mic's capture thread): queued for the send thread."""
        if len(self._inbox) == self._inbox.maxlen:
            self.frames_dropped += 1  # the send thread is that far behind: oldest out
        self._inbox.append(frame)
        self._ready.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audio-send", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Send nothing more (returns once a frame being sent is done). Idempotent."""
        self._stop.set()
        self._ready.set()
        with self._lock:
            self._closed = True
            self._socket.close()

    # -- the audio send thread ----------------------------------------------------------

    def _take(self, timeout: float) -> PcmFrame | None:
        inbox = self._inbox
        if not inbox:
            self._ready.clear()
            if not inbox:
                self._ready.wait(timeout)
        return inbox.popleft() if inbox else None

    def _run(self) -> None:
        name_this_thread()
        track = self.track
        silence = bytes(FRAME_SAMPLES * 2)
        next_at: float | None = None
        try:
            while not self._stop.is_set():
                gate, mix = track.gate, track.mix
                if track.mic is not None and gate()[0]:
                    pcm = self._take(WAIT_S)
                    if pcm is None:
                        continue
                    frame = mic_frame(pcm, gate, mix)
                    next_at = None
                else:  # no mic for the room: paced silence
                    self._inbox.clear()
                    now = time.monotonic()
                    if next_at is None or next_at < now - 0.2:
                        next_at = now
                    if next_at > now and self._stop.wait(next_at - now):
                        break
                    next_at += FRAME_S
                    frame = silent_frame(silence, gate, mix)
                self._send(frame)
        except Exception as exc:  # a bug: the loop sees it and ends the sender's run
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("audio RTP send stopped")

    def _send(self, frame: SendFrame) -> None:
        with self._lock:
            if self._closed or self.failed is not None:
                return
            encoder = self.track.encoder
            loss = self.expected_loss
            if loss is not None:
                self.expected_loss = None
                encoder.set_expected_loss(loss)
            packets = list(encoder.encode(frame.samples, frame.level))
            self.track.frames += 1
            self.frames += 1
        batch_at = time.monotonic()
        packet_s = encoder.frame_samples / SAMPLE_RATE
        for i, packet in enumerate(packets):
            if i:  # 10 ms packets of a 20 ms frame: one packet-length apart
                delay = batch_at + i * packet_s - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            with self._lock:
                if self._closed or self.failed is not None:
                    return
                self._send_packet(packet.data, packet.pts, packet.level)
            if frame.due is not None:  # how late the audio leaves, for the video budget
                AUDIO_DEADLINE.report(time.monotonic() - frame.due - i * packet_s)
            self.track.last_audio_level = packet.level

    def _send_packet(self, payload: bytes, pts: int, level: int) -> None:
        dtls = self._dtls
        if dtls._state is not _DTLS_CONNECTED:
            self.failed = f"DTLS {dtls._state.name.lower()}"
            return
        sock, addr = self._socket.target()
        if sock is None:
            self.dropped += 1
            return
        timestamp = (self._timestamp_origin + pts) & 0xFFFFFFFF
        ntp = clock.current_ntp_time()
        profile, ext = self._extensions_map.set(HeaderExtensions(
            mid=self._mid, abs_send_time=(ntp >> 14) & 0x00FFFFFF,
            audio_level=(False, level)))
        if ext:
            first = 0x90
            ext = _EXT_HEADER.pack(profile, len(ext) >> 2) + ext
        else:
            first = 0x80
        sender = self.sender
        seq = self._sequence_number
        # the marker bit as the loop's sender sets it (the last packet of a frame)
        data = _HEADER.pack(first, self._payload_type | 0x80, seq, timestamp,
                            sender._ssrc) + ext + payload
        sender._sent[seq % RTP_HISTORY_SIZE] = data
        protected = self._session.protect(data)
        self._sequence_number = (seq + 1) & 0xFFFF
        sent = wire = 0
        try:
            sock.sendto(protected, addr)
            sent, wire = 1, len(protected)
            self.packets += 1
            self.threads.add(threading.current_thread().name)
        except OSError as exc:
            if exc.errno not in _DROPPABLE:
                self.send_errors += 1
                if self.send_errors == 1:
                    log.warning("audio RTP send to %s failed: %s", addr, exc)
            self.dropped += 1
        sender.count_frame(dtls, 1, len(payload), sent, wire, ntp, timestamp)


def sends_audio_off_loop(track: Any) -> bool:
    """Whether ``track``'s audio can be made and sent on a thread."""
    return bool(track is not None and getattr(track, "sends_off_loop", False))


async def send_audio_off_loop(sender: Any, codec: Any, sequence_number: int,
                              timestamp_origin: int) -> int:
    """Run ``sender``'s audio stream on the ``audio-send`` thread until the connection
    leaves CONNECTED or the sink fails (raises ConnectionError), the track ends (raises
    MediaStreamError) or the sender's track changes; returns the next sequence number
    for the loop's own send path. Cancelled: nothing is sent once it returns."""
    from services.room.srtp_lock import locked_tx_session

    dtls = sender.transport
    session = locked_tx_session(dtls)
    if session is None or dtls._state is not _DTLS_CONNECTED:
        raise ConnectionError("Cannot send encrypted RTP, not connected")
    track = sender.track
    sink = AudioRtpSink(sender, dtls, session, track, codec.payloadType, sequence_number,
                        timestamp_origin)
    sender.rtp_sink = track.rtp_sink = sink
    mic = track.mic
    if mic is not None:
        mic.set_thread_sink(sink.offer)
    sink.start()
    log.info("audio RTP sent from the audio-send thread")
    try:
        while True:
            await asyncio.sleep(WATCH_S)
            if dtls._state is not _DTLS_CONNECTED:
                raise ConnectionError("Cannot send encrypted RTP, not connected")
            if sink.failed is not None:
                raise ConnectionError(f"audio RTP send failed: {sink.failed}")
            if track.readyState != "live":
                raise MediaStreamError
            if sender.track is not track:  # replaceTrack()
                break
    finally:
        if mic is not None:
            mic.set_thread_sink(None)
        sink.close()
        track.rtp_sink = None
        log.info("audio RTP from the audio-send thread stopped: %r", sink)
    return sink.next_sequence_number
