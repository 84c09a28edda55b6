"""G.711 (PCMU, PCMA) and G.722 voices, to and from the box's 48 kHz audio.

A VideoRoom whose ``audiocodec`` puts one of them before Opus (``"pcmu,opus"``) has every
member that offers it publish it there: Chromium and aiortc offer all three. The box
offers Opus alone first, so it sends Opus wherever the room takes Opus, but it receives
what each member sends. Only in a room that takes no Opus at all (``"pcmu"``) does it
offer these, and send the one the room picks
(:class:`services.room.narrowband_send.NarrowbandSendEncoder`).

:class:`NarrowbandDecoder` has the interface of
:class:`services.audio.opus.OpusDecoder` that :class:`services.room.jitter.JitterBuffer`
uses, without in-band FEC (``opus = False``: a following packet never rebuilds a lost
one) and without a PLC of its own: :meth:`NarrowbandDecoder.conceal` gives silence, and
the jitter buffer's concealer (:mod:`services.room.expand`) then repeats the last pitch
period, fading, as it does when libopus's PLC collapses (G.711 Appendix I conceals the
same way).

FFmpeg codes (``pcm_mulaw``, ``pcm_alaw``, ``g722``: 8 or 16 kHz) and libswresample
converts between that and 48 kHz, keeping its filter's state from packet to packet. All
three run on an 8 kHz RTP clock (RFC 3551: G.722 too, though it samples at 16 kHz), so
the packets' timestamps are scaled by six for the 48 kHz jitter buffer
(:func:`rtp_scale`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    Samples = npt.NDArray[np.int16]
else:
    np = lazy_module("numpy", globals(), "np")

RATE = 48_000
#: RTP codec name (lower case) -> (FFmpeg decoder, the rate it decodes at).
CODECS: dict[str, tuple[str, int]] = {
    "pcmu": ("pcm_mulaw", 8000),
    "pcma": ("pcm_alaw", 8000),
    "g722": ("g722", 16000),
}


def rtp_scale(clock_rate: int) -> int:
    """What an RTP timestamp at ``clock_rate`` is multiplied by for the 48 kHz buffer."""
    if clock_rate <= 0 or RATE % clock_rate:
        raise ValueError(f"an RTP clock of {clock_rate} Hz does not divide {RATE} Hz")
    return RATE // clock_rate


def open_codec(codec: str, mode: Literal["r", "w"]) -> Any:
    """FFmpeg's coder of ``codec`` (``mode`` ``"r"``: decoder, ``"w"``: encoder), mono
    16-bit at the codec's own rate."""
    import av  # PyAV loads with the room

    if codec not in CODECS:
        raise ValueError(f"not a G.711 or G.722 codec: {codec!r} (known: {', '.join(CODECS)})")
    name, rate = CODECS[codec]
    context: Any = av.CodecContext.create(name, mode)
    context.format, context.layout, context.sample_rate = "s16", "mono", rate
    return context


class NarrowbandDecoder:
    """One G.711 or G.722 stream: packets to 48 kHz mono 16-bit samples."""

    opus = False  # no in-band FEC, no TOC byte

    def __init__(self, codec: str) -> None:
        import av

        self._context = open_codec(codec, "r")
        self.codec = codec
        self._resampler: Any = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._packet = av.Packet

    def __repr__(self) -> str:
        state = "closed" if self._context is None else "open"
        return f"<NarrowbandDecoder {self.codec} {state}>"

    def decode(self, payload: bytes) -> Samples:
        """One packet, decoded and resampled to 48 kHz."""
        if self._context is None:
            raise RuntimeError("the decoder is closed")
        if not payload:
            raise ValueError("an empty packet cannot be decoded; use conceal()")
        parts = [f.to_ndarray().reshape(-1)
                 for frame in self._context.decode(self._packet(payload))
                 for f in self._resampler.resample(frame)]
        if not parts:
            return np.zeros(0, np.int16)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def conceal(self, samples: int) -> Samples:
        """Silence: the jitter buffer's concealer repeats the voice instead."""
        return np.zeros(samples, np.int16)

    def decode_fec(self, next_payload: bytes, samples: int) -> Samples:
        """No in-band FEC in these codecs: concealment."""
        return self.conceal(samples)

    def close(self) -> None:
        self._context = self._resampler = None


def audio_decoder(codec: str) -> Any:
    """A decoder for a received voice in ``codec`` (an RTP name, any case)."""
    name = codec.lower()
    if name == "opus":
        from services.audio.opus import OpusDecoder

        return OpusDecoder()
    return NarrowbandDecoder(name)
