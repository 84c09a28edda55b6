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
import logging
import threading
import time
from collections import deque
from typing import Any

from aiortc.mediastreams import MediaStreamError

from drivers.audio.base import FRAME_SAMPLES, MIC_QUEUE_FRAMES, SAMPLE_RATE, PcmFrame
from drivers.threadname import name_this_thread
from services.media.budget import AUDIO_DEADLINE
from services.room.mic_frames import SendFrame, mic_frame, silent_frame
from services.room.rtp_wire import DTLS_CONNECTED, RtpWire
from services.room.srtp_lock import LockedSrtpSession

log = logging.getLogger(__name__)

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
        self._wire = RtpWire("audio", sender, dtls, session, payload_type, sequence_number)
        self._timestamp_origin = timestamp_origin
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
        self.frames_dropped = 0
        self.threads: set[str] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.failed or "open"
        return (f"<AudioRtpSink {state} frames={self.frames} packets={self.packets} "
                f"dropped={self.dropped} errors={self.send_errors}>")

    @property
    def next_sequence_number(self) -> int:
        return self._wire.sequence_number

    @property
    def packets(self) -> int:
        return self._wire.packets

    @property
    def dropped(self) -> int:
        return self._wire.dropped

    @property
    def send_errors(self) -> int:
        return self._wire.send_errors

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
            self._wire.close()

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
        wire = self._wire
        # one packet is a whole frame: the marker bit set, as the loop's sender sets it
        if wire.send([payload], (self._timestamp_origin + pts) & 0xFFFFFFFF, level):
            self.threads.add(threading.current_thread().name)
        if wire.failed is not None:
            self.failed = wire.failed


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
    if session is None or dtls._state is not DTLS_CONNECTED:
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
            if dtls._state is not DTLS_CONNECTED:
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
