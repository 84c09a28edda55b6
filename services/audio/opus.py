"""A thin ctypes binding to libopus: the decoder (with in-band FEC and PLC) and the encoder.

Only the calls the appliance uses are bound. The library is loaded on first use, so
importing this module never fails; a missing library raises :class:`OpusMissing`
naming the package to install. PCM is numpy ``int16`` (interleaved when stereo); the C
calls release the GIL.

The receive side decodes each RTP packet itself (:class:`OpusDecoder`): a lost packet
is rebuilt from the in-band FEC data the next packet carries (``decode_fec``), or
extrapolated by the decoder's packet-loss concealment (``conceal``). The encoder is
bound with the controls FEC needs (in-band FEC, expected loss, bitrate).

Constants come from ``/usr/include/opus/opus_defines.h``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import TYPE_CHECKING, Any, Self

from drivers.errors import EdgeroomError
from drivers.lazy import lazy_module
from services.audio.clib import SharedLibrary

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    Int16Array = npt.NDArray[np.int16]
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)


OPUS_OK = 0
OPUS_APPLICATION_VOIP = 2048
OPUS_APPLICATION_AUDIO = 2049
OPUS_APPLICATION_RESTRICTED_LOWDELAY = 2051
OPUS_SET_BITRATE_REQUEST = 4002
OPUS_SET_COMPLEXITY_REQUEST = 4010
OPUS_GET_COMPLEXITY_REQUEST = 4011
OPUS_SET_INBAND_FEC_REQUEST = 4012
OPUS_SET_PACKET_LOSS_PERC_REQUEST = 4014
OPUS_SET_DTX_REQUEST = 4016
OPUS_GET_BITRATE_REQUEST = 4003
OPUS_GET_INBAND_FEC_REQUEST = 4013
OPUS_GET_PACKET_LOSS_PERC_REQUEST = 4015
OPUS_GET_DTX_REQUEST = 4017
OPUS_RESET_STATE = 4028

#: The longest Opus packet: 120 ms at 48 kHz.
MAX_FRAME_SAMPLES = 5760
MAX_PACKET_BYTES = 1500

LIBRARY_NAMES = ("libopus.so.0", "libopus.so")


class OpusMissing(EdgeroomError, ImportError):
    """libopus is not installed (Debian: ``apt-get install libopus0``)."""


class OpusError(EdgeroomError, RuntimeError):
    """libopus refused a call or a packet (the message holds libopus's own words)."""


def _bind(lib: ctypes.CDLL) -> None:
    vp, c_int, i32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int32
    ip = ctypes.POINTER(c_int)
    signatures: dict[str, tuple[list[Any] | None, Any]] = {
        "opus_decoder_create": ([i32, c_int, ip], vp),
        "opus_decoder_destroy": ([vp], None),
        "opus_decode": ([vp, vp, i32, vp, c_int, c_int], c_int),
        "opus_encoder_create": ([i32, c_int, c_int, ip], vp),
        "opus_encoder_destroy": ([vp], None),
        "opus_encode": ([vp, vp, c_int, vp, i32], i32),
        # variadic: the request's argument is passed as a second int
        "opus_encoder_ctl": (None, c_int),
        "opus_packet_get_nb_samples": ([vp, i32, i32], c_int),
        # (data, len, out_toc, frames[48], size[48], payload_offset)
        "opus_packet_parse": ([vp, i32, vp, vp, vp, ip], c_int),
        "opus_strerror": ([c_int], ctypes.c_char_p),
        "opus_get_version_string": ([], ctypes.c_char_p),
    }
    for name, (argtypes, restype) in signatures.items():
        fn = getattr(lib, name)
        if argtypes is not None:
            fn.argtypes = argtypes
        fn.restype = restype


def _missing(tried: list[str]) -> OpusMissing:
    return OpusMissing(
        "libopus is not available (the room's audio is decoded with it); install the "
        "Debian package libopus0 (apt-get install libopus0). Tried: " + "; ".join(tried))


_library = SharedLibrary(LIBRARY_NAMES, "opus", _bind, _missing)


def load_library(names: tuple[str, ...] = LIBRARY_NAMES) -> ctypes.CDLL:
    """The loaded libopus (once per process); raises :class:`OpusMissing`."""
    return _library.load(names)


def _check(lib: ctypes.CDLL, rc: int, what: str) -> int:
    if rc < 0:
        raise OpusError(f"{what}: {lib.opus_strerror(rc).decode()} ({rc})")
    return rc


def packet_samples(payload: bytes, rate: int = 48_000) -> int:
    """Samples per channel an Opus packet decodes to; raises OpusError if it is invalid."""
    lib = load_library()
    return _check(lib, lib.opus_packet_get_nb_samples(payload, len(payload), rate),
                  "opus packet")


class _OpusState:
    """A libopus encoder or decoder state: closed once (also by ``with`` and at
    collection), and refused once closed."""

    _kind = "state"  # "decoder" / "encoder": names the libopus destroy call
    rate: int
    channels: int
    _lib: ctypes.CDLL
    _state: int | None = None

    @property
    def handle(self) -> int:
        if self._state is None:
            raise ValueError(f"Opus {self._kind} is closed")
        return self._state

    def close(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            getattr(self._lib, f"opus_{self._kind}_destroy")(state)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._state is None else "open"
        return f"<{type(self).__name__} {state} {self.rate} Hz x{self.channels}>"


class OpusDecoder(_OpusState):
    """``OpusDecoder``: packets to 16-bit PCM at ``rate`` with ``channels`` (1 mixes a
    stereo stream down inside libopus)."""

    _kind = "decoder"
    opus = True  # packets have a TOC byte, and may carry in-band FEC for the one before

    def __init__(self, rate: int = 48_000, channels: int = 1) -> None:
        self._state: int | None = None
        if rate not in (8000, 12000, 16000, 24000, 48000) or channels not in (1, 2):
            raise ValueError(f"Opus decodes at 8/12/16/24/48 kHz, 1 or 2 channels; "
                             f"got {rate} Hz x{channels}")
        self._lib = load_library()
        self.rate = rate
        self.channels = channels
        err = ctypes.c_int(0)
        state = self._lib.opus_decoder_create(rate, channels, ctypes.byref(err))
        _check(self._lib, err.value, "opus_decoder_create")
        if not state:
            raise OpusError("opus_decoder_create returned nothing")
        self._state = state
        self._out = np.zeros(MAX_FRAME_SAMPLES * channels, dtype=np.int16)

    def _run(self, payload: bytes | None, samples: int, fec: bool) -> Int16Array:
        data, size = (payload, len(payload)) if payload else (None, 0)
        got = self._lib.opus_decode(self.handle, data, size, self._out.ctypes.data,
                                    samples, int(fec))
        _check(self._lib, got, "opus_decode")
        return self._out[: got * self.channels].copy()

    def decode(self, payload: bytes) -> Int16Array:
        """One packet, decoded."""
        if not payload:
            raise ValueError("an empty Opus packet cannot be decoded; use conceal()")
        return self._run(payload, MAX_FRAME_SAMPLES, False)

    def decode_fec(self, next_payload: bytes, samples: int) -> Int16Array:
        """The ``samples`` lost just before ``next_payload``, from its in-band FEC data.

        A packet without FEC data yields concealment instead (libopus falls back to PLC).
        ``next_payload`` must then be decoded normally as well.
        """
        return self._run(next_payload, samples, True)

    def conceal(self, samples: int) -> Int16Array:
        """``samples`` (a multiple of 2.5 ms) of packet-loss concealment."""
        return self._run(None, samples, False)



class OpusEncoder(_OpusState):
    """``OpusEncoder``: 16-bit PCM frames (2.5-60 ms) to packets, FEC on request."""

    _kind = "encoder"

    def __init__(self, rate: int = 48_000, channels: int = 1, *,
                 application: int = OPUS_APPLICATION_VOIP, bitrate: int | None = None,
                 fec: bool = False, loss_pct: int = 0, complexity: int | None = None) -> None:
        self._state: int | None = None
        self._lib = load_library()
        self.rate = rate
        self.channels = channels
        err = ctypes.c_int(0)
        state = self._lib.opus_encoder_create(rate, channels, application, ctypes.byref(err))
        _check(self._lib, err.value, "opus_encoder_create")
        if not state:
            raise OpusError("opus_encoder_create returned nothing")
        self._state = state
        self._out = ctypes.create_string_buffer(MAX_PACKET_BYTES)
        if bitrate is not None:
            self._ctl(OPUS_SET_BITRATE_REQUEST, bitrate)
        if complexity is not None:
            self.set_complexity(complexity)
        self.set_fec(fec)
        self.set_packet_loss(loss_pct)

    def _ctl(self, request: int, value: int) -> None:
        rc = self._lib.opus_encoder_ctl(ctypes.c_void_p(self.handle), ctypes.c_int(request),
                                        ctypes.c_int(value))
        _check(self._lib, rc, f"opus_encoder_ctl({request}, {value})")

    def set_fec(self, on: bool) -> None:
        self._ctl(OPUS_SET_INBAND_FEC_REQUEST, int(on))

    def set_packet_loss(self, percent: int) -> None:
        """The loss the encoder should expect (0-100): more FEC data as it grows."""
        if not 0 <= percent <= 100:
            raise ValueError(f"packet loss must be 0-100 percent, got {percent}")
        self._ctl(OPUS_SET_PACKET_LOSS_PERC_REQUEST, percent)

    def set_complexity(self, value: int) -> None:
        """Encoder effort, 0-10 (libopus's own default: 9 since 1.3): lower is cheaper,
        at little cost to speech at the room's bitrates (docs/performance.md, "Opus")."""
        if not 0 <= value <= 10:
            raise ValueError(f"Opus complexity must be 0-10, got {value}")
        self._ctl(OPUS_SET_COMPLEXITY_REQUEST, value)

    def set_bitrate(self, bps: int) -> None:
        self._ctl(OPUS_SET_BITRATE_REQUEST, bps)

    def set_dtx(self, on: bool) -> None:
        """Discontinuous transmission: near-empty packets while the input is silent."""
        self._ctl(OPUS_SET_DTX_REQUEST, int(on))

    def get(self, request: int) -> int:
        """The value of a ``OPUS_GET_*`` request (for checks and stats)."""
        value = ctypes.c_int32(0)
        rc = self._lib.opus_encoder_ctl(ctypes.c_void_p(self.handle), ctypes.c_int(request),
                                        ctypes.byref(value))
        _check(self._lib, rc, f"opus_encoder_ctl({request})")
        return value.value

    def encode(self, pcm: Int16Array) -> bytes:
        """One frame (interleaved if stereo) to one packet."""
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        samples = len(pcm) // self.channels
        got = self._lib.opus_encode(self.handle, pcm.ctypes.data, samples, self._out,
                                    MAX_PACKET_BYTES)
        _check(self._lib, got, f"opus_encode({samples} samples)")
        return self._out.raw[:got]

