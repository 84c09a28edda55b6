"""Whether an Opus packet carries in-band FEC (LBRR) data for the packet before it.

libopus 1.5 answers this itself (``opus_packet_has_lbrr``); the appliance's 1.3.1 does
not, so it is read from the packet here:

- Only a packet with a SILK layer can carry LBRR data: SILK-only or hybrid, TOC
  configurations 0-15 (RFC 6716 section 3.1). A CELT-only packet never does.
- The FEC data that rebuilds a lost packet is the first Opus frame's (libopus decodes
  ``decode_fec`` from it). Its place in the packet follows the framing of RFC 6716
  section 3.2 (codes 0-3: one frame, two equal, two sized, or a counted number with
  optional padding), which libopus's ``opus_packet_parse`` reads and checks.
- A SILK frame starts with one VAD flag per 20 ms SILK frame of the Opus frame
  (``max(1, duration / 20 ms)``: 1, 1, 2 or 3), then the LBRR flag, all coded with
  probability one half (RFC 6716 section 4.2.3-4.2.4). Symbols of that probability at
  the very start of the range coder come out as the first bits of the frame's first
  byte, so the mid channel's LBRR flag is bit ``7 - n`` (``n`` SILK frames); a stereo
  packet then has the side channel's VAD flags and its LBRR flag, bit ``6 - 2 n``.
"""

from __future__ import annotations

import ctypes

from services.audio.opus import OpusError, load_library

#: Most frames one Opus packet holds (120 ms of 2.5 ms frames).
MAX_FRAMES = 48
#: Opus frame length of each SILK-only (0-11) and hybrid (12-15) TOC configuration, ms.
_SILK_MS = (10, 20, 40, 60)
_HYBRID_MS = (10, 20)


def silk_frames(toc: int) -> int:
    """SILK frames (20 ms, or one of 10 ms) in one Opus frame of this TOC byte; 0 for a
    CELT-only configuration."""
    config = toc >> 3
    if config >= 16:
        return 0
    ms = _SILK_MS[config % 4] if config < 12 else _HYBRID_MS[config % 2]
    return max(1, ms // 20)


def first_frame(payload: bytes) -> bytes:
    """The data of the packet's first Opus frame (RFC 6716 section 3.2); raises
    :class:`~services.audio.opus.OpusError` for a packet libopus cannot parse."""
    lib = load_library()
    toc = ctypes.c_ubyte(0)
    frames = (ctypes.c_void_p * MAX_FRAMES)()
    sizes = (ctypes.c_int16 * MAX_FRAMES)()
    offset = ctypes.c_int(0)
    count = lib.opus_packet_parse(payload, len(payload), ctypes.byref(toc), frames, sizes,
                                  ctypes.byref(offset))
    if count < 0:
        raise OpusError(f"opus packet of {len(payload)} bytes: "
                        f"{lib.opus_strerror(count).decode()} ({count})")
    if count == 0:
        return b""
    start = offset.value
    return payload[start:start + sizes[0]]


def carries_lbrr(payload: bytes) -> bool:
    """Whether the packet carries LBRR data its ``decode_fec`` can rebuild the packet
    before it from. False for CELT-only, empty (DTX) and unparsable packets."""
    if len(payload) < 2:
        return False
    n = silk_frames(payload[0])
    if n == 0:
        return False
    try:
        frame = first_frame(payload)
    except OpusError:
        return False
    if not frame:
        return False
    first = frame[0]
    if first >> (7 - n) & 1:
        return True
    return bool(payload[0] & 0x04) and bool(first >> (6 - 2 * n) & 1)
