"""The mic's Opus encode: PCM in, packets out, once, on the mic path.

aiortc would encode a track's audio frames itself (PyAV's libopus, fixed when opened,
FEC off, one executor hop per frame). The room's mic track hands it packets instead:
aiortc's ``RTCRtpSender`` packs whatever is not a frame as it is (``OpusEncoder.pack``
takes the RTP timestamp from ``pts``), so the packets made here go out unchanged.

The encoder runs inline, on the event loop: one 20 ms mono frame takes a fraction of a
millisecond in libopus (which releases the GIL), less than the hop to a worker thread.

Digital silence (a muted or closed mic, a listener, volume 0) is not encoded once it has
lasted :data:`SILENCE_AFTER_MS`: the packet the encoder made of the last silent frame it
saw goes out again for each frame, and the encoder picks up where it was at the first
frame with sound. libopus spends nearly as much on a frame of zeros as on a voice (about
0.2 ms against 0.27 ms here; 0.08 ms for a steady tone), so a muted box no longer pays
for it 50 times a second. The packet is a real one of the stream (SILK or hybrid, with
its FEC), so a receiver stays in that mode and can still rebuild a lost first packet of
the sound that follows from the FEC data of the next; libopus's CELT-only silence packet
would end that (a decoder coming out of CELT-only frames conceals instead).

In-band FEC is on, and the encoder is told the loss to expect from the room server's
receiver reports (RTCP "fraction lost"): libopus spends more of the bitrate on FEC as it
grows. Two things aiortc does only for frames are done here for packets, through
:func:`install_audio_sender_hooks`: the receiver reports reach the track
(``on_receiver_report``), and every packet carries the RFC 6464 audio level, from which
the room server tells who is talking.

Packets are mono; the SDP still says ``opus/48000/2`` (RFC 7587), and every decoder
(Chromium's, Janus's, this appliance's) plays a mono packet on a stereo stream. RTP
timestamps run at 48 kHz whatever the channel count: 960 per 20 ms, 480 per 10 ms.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from drivers.audio.base import SAMPLE_RATE
from drivers.lazy import lazy_module
from services.audio.opus import OpusEncoder

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)

OPUS_TIME_BASE = Fraction(1, SAMPLE_RATE)
FRAME_MS_CHOICES = (10, 20)
#: A DTX packet carries only its table of contents (1-2 bytes): it is not sent, the gap
#: in RTP timestamps tells the receiver (as libwebrtc does).
DTX_PACKET_BYTES = 2
#: Digital silence encoded as usual before its last packet is sent again instead: the
#: encoder winds down, and the packet after the last sound carries that sound's FEC data.
SILENCE_AFTER_MS = 100
#: With DTX on, digital silence past :data:`SILENCE_AFTER_MS` is encoded this often (the
#: encoder's own DTX updates), and neither encoded nor sent otherwise.
DTX_UPDATE_MS = 400
#: RFC 6464 level of digital silence
SILENT_LEVEL = 127
#: Most loss the encoder is told to expect: beyond it FEC stops helping.
MAX_EXPECTED_LOSS = 50
#: libopus's own default (libwebrtc keeps it on desktops; 5 on Android and iOS halves the
#: cost per frame, but keeps steady tones in hybrid mode, which conceal worse under loss).
DEFAULT_COMPLEXITY = 9

_installed = False


@dataclass(frozen=True)
class OpusSendSettings:
    """How the mic is encoded for the room (``[audio]``)."""

    frame_ms: int = 20
    """Audio per packet: 20 (50 packets/s) or 10 (100 packets/s, less delay)."""
    bitrate_kbps: int = 32
    """Opus target bitrate; FEC data comes out of it."""
    dtx: bool = False
    """Send (almost) nothing while the mic is silent."""
    complexity: int = DEFAULT_COMPLEXITY
    """libopus encoder effort, 0-10: 5 costs about half of the default 9 per frame for the
    same speech at 32 kbps (docs/performance.md, "Opus"; docs/audio.md for the catch)."""
    fec: bool = True
    """In-band forward error correction, its share following the loss the server reports
    (20 ms packets only: libopus puts next to no FEC data into 10 ms ones). On by
    default, as in libwebrtc: on speech through loss the receiver hears more of what was
    said with it (docs/audio.md, "In-band FEC")."""

    @property
    def in_band_fec(self) -> bool:
        """Whether the encoder is asked for FEC: with 20 ms packets, when ``fec`` is on."""
        return self.fec and self.frame_ms == 20

    def __post_init__(self) -> None:
        if self.frame_ms not in FRAME_MS_CHOICES:
            raise ValueError(f"audio.frame_ms must be 10 or 20, got {self.frame_ms}")
        if not 6 <= self.bitrate_kbps <= 510:
            raise ValueError(f"audio.opus_bitrate_kbps must be 6..510, got {self.bitrate_kbps}")
        if not 0 <= self.complexity <= 10:
            raise ValueError(f"audio.opus_complexity must be 0..10, got {self.complexity}")


@dataclass(frozen=True, slots=True)
class OpusPacket:
    """One encoded frame: ``pts`` counts samples (48 kHz) from the encoder's start."""

    data: bytes
    pts: int
    #: RFC 6464 level of the frame: -dBov, 0 (loudest) to 127 (silence)
    level: int


def whole_frames(pending: Any, samples: bytes, n: int) -> tuple[list[Any], Any]:
    """``samples`` (16-bit PCM) after ``pending`` (int16 samples left over from the last
    call), cut into frames of ``n`` samples: (the frames, the samples left over)."""
    pcm = np.frombuffer(samples, dtype=np.int16)
    if len(pending):
        pcm = np.concatenate((pending, pcm))
    whole = len(pcm) - len(pcm) % n
    return [pcm[start:start + n] for start in range(0, whole, n)], pcm[whole:].copy()


def audio_level(pcm: np.ndarray[Any, np.dtype[np.int16]]) -> int:
    """RFC 6464 audio level of ``pcm``: 0 (full scale) to 127 (silence)."""
    if len(pcm) == 0:
        return 127
    x = pcm.astype(np.float64)
    rms = math.sqrt(float(np.dot(x, x)) / len(x)) / 32767.0
    if rms <= 0.0:
        return 127
    return int(min(127, max(0, round(-20.0 * math.log10(rms)))))


class OpusSendEncoder:
    """Mono 48 kHz PCM (any length) to Opus packets of ``settings.frame_ms``.

    ``skip_silence=False`` encodes digital silence like any sound (a reference for
    ``make bench``)."""

    def __init__(self, settings: OpusSendSettings | None = None, *,
                 skip_silence: bool = True) -> None:
        self.settings = s = settings or OpusSendSettings()
        self.frame_samples = SAMPLE_RATE * s.frame_ms // 1000
        self._skip_silence = skip_silence
        self._silence_after = SILENCE_AFTER_MS // s.frame_ms
        self._dtx_every = DTX_UPDATE_MS // s.frame_ms
        #: frames of digital silence in a row, up to the current one
        self._silent_run = 0
        #: the packet of the last silent frame the encoder was given
        self._held = b""
        self._encoder = OpusEncoder(SAMPLE_RATE, 1, bitrate=s.bitrate_kbps * 1000,
                                    fec=s.in_band_fec, complexity=s.complexity)
        if s.dtx:
            self._encoder.set_dtx(True)
        self._pending = np.zeros(0, dtype=np.int16)
        self._pts = 0
        self.expected_loss_pct = 0
        self.packets = 0
        self.bytes = 0
        self.dtx_skipped = 0
        self.silence_packets = 0

    def __repr__(self) -> str:
        s = self.settings
        return (f"<OpusSendEncoder {s.frame_ms} ms {s.bitrate_kbps} kbps cx={s.complexity} "
                f"fec={s.in_band_fec} "
                f"dtx={s.dtx} loss={self.expected_loss_pct}% packets={self.packets}>")

    @property
    def encoder(self) -> OpusEncoder:
        return self._encoder

    def set_expected_loss(self, percent: float) -> None:
        """The loss the receiver reported (percent): the encoder plans its FEC for it."""
        value = int(min(MAX_EXPECTED_LOSS, max(0, round(percent))))
        if value != self.expected_loss_pct:
            log.debug("opus expected loss %d -> %d %%", self.expected_loss_pct, value)
            self.expected_loss_pct = value
            self._encoder.set_packet_loss(value)

    def encode(self, samples: bytes, level: int | None = None) -> Iterator[OpusPacket]:
        """The packets ``samples`` complete (none while less than a frame is buffered).

        ``level`` is the RFC 6464 level of ``samples`` when the mic path measured it
        already; otherwise each packet's level is computed from its own samples."""
        n = self.frame_samples
        frames, self._pending = whole_frames(self._pending, samples, n)
        for frame in frames:
            pts = self._pts
            self._pts += n
            held = self._held_for(frame)
            if held is not None:
                if self.settings.dtx:
                    self.dtx_skipped += 1
                    continue
                self.silence_packets += 1
                data, frame_level = held, SILENT_LEVEL
            else:
                data = self._encoder.encode(frame)
                if self._silent_run:
                    self._held = data
                if self.settings.dtx and len(data) <= DTX_PACKET_BYTES:
                    self.dtx_skipped += 1
                    continue
                frame_level = audio_level(frame) if level is None else level
            self.packets += 1
            self.bytes += len(data)
            yield OpusPacket(data, pts, frame_level)

    def _held_for(self, frame: Any) -> bytes | None:
        """The held packet when ``frame`` is digital silence that has lasted long enough
        (with DTX: but for its update every :data:`DTX_UPDATE_MS`); None when the
        encoder is to encode ``frame``."""
        if not self._skip_silence:
            return None
        if frame.any():
            self._silent_run = 0
            return None
        self._silent_run += 1
        past = self._silent_run - self._silence_after
        if past <= 0 or (self.settings.dtx and past % self._dtx_every == 0):
            return None
        return self._held

    @property
    def stats(self) -> dict[str, int]:
        return {"packets": self.packets, "bytes": self.bytes, "dtx_skipped": self.dtx_skipped,
                "silence_packets": self.silence_packets,
                "expected_loss_pct": self.expected_loss_pct,
                "frame_ms": self.settings.frame_ms}

    def close(self) -> None:
        self._encoder.close()


def install_audio_sender_hooks() -> None:
    """Receiver reports to tracks with ``on_receiver_report(percent)``, and the audio
    level of tracks with ``last_audio_level`` onto their packets (idempotent)."""
    global _installed
    if _installed:
        return
    from aiortc.rtcrtpsender import RTCRtpSender
    from aiortc.rtp import RtcpRrPacket, RtcpSrPacket

    from services.room.stats import loss_percent

    handle_rtcp = RTCRtpSender._handle_rtcp_packet
    next_encoded = RTCRtpSender._next_encoded_frame

    async def _handle_rtcp_packet(self: RTCRtpSender, packet: Any) -> None:
        await handle_rtcp(self, packet)
        if not isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            return
        listener = getattr(self.track, "on_receiver_report", None)
        if listener is None:
            return
        for report in packet.reports:
            if report.ssrc == self._ssrc:
                listener(loss_percent(report.fraction_lost))

    async def _next_encoded_frame(self: RTCRtpSender, codec: Any) -> Any:
        frame = await next_encoded(self, codec)
        if frame is not None and frame.audio_level is None:
            level = getattr(self.track, "last_audio_level", None)
            if level is not None:
                # aiortc writes -audio_level into the extension (its dBov is negative)
                frame.audio_level = -level
        return frame

    RTCRtpSender._handle_rtcp_packet = _handle_rtcp_packet  # type: ignore[method-assign]
    RTCRtpSender._next_encoded_frame = _next_encoded_frame  # type: ignore[method-assign]
    _installed = True
    log.debug("aiortc audio sender hooks installed")
