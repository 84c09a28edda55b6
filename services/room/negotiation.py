"""Which codecs a room chose, read from the SDP the room server answered with.

Janus's VideoRoom takes the first of the room's codecs (``videocodec``, ``audiocodec``)
that the offer has, and answers with that one; when the offer has none of them it
rejects the section (video: port 0, no codecs; audio: ``a=inactive``). The box produces
exactly what the answer names, or no video. For audio it offers Opus alone first, and
only where the room refuses Opus the G.711 and G.722 codecs
(:mod:`services.audio.narrowband`), so that a room that takes Opus always gets it.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: Video codecs the box can produce and aiortc can packetize (and decode).
PRODUCIBLE = ("h264", "vp8")
#: Payload formats that ride along with a video codec rather than being one.
_AUXILIARY = ("rtx", "red", "ulpfec", "flexfec-03")


def codec_name(mime_type: str) -> str:
    """``"video/VP8"`` -> ``"vp8"``."""
    return mime_type.split("/")[-1].lower()


def offer_producible(transceiver: Any) -> None:
    """Offer only the video codecs the box can produce: H.264 first, then VP8 (the room
    decides among them by its own order)."""
    from aiortc import RTCRtpSender  # aiortc loads with the room (services/room/lazy_media.py)

    caps = RTCRtpSender.getCapabilities("video").codecs
    ranked = sorted((c for c in caps if codec_name(c.mimeType) in (*PRODUCIBLE, "rtx")),
                    key=lambda c: {"h264": 0, "vp8": 1}.get(codec_name(c.mimeType), 2))
    transceiver.setCodecPreferences(ranked)


#: Opus format parameters this box declares (RFC 7587), as Chromium does: it decodes
#: in-band FEC (``useinbandfec=1``: a sender may put FEC data in its packets, and Janus
#: keeps it for rooms with ``opus_fec``), and takes packets down to 10 ms (``minptime``).
OPUS_FMTP: dict[str, int] = {"minptime": 10, "useinbandfec": 1}


def declare_opus_fmtp() -> None:
    """Give aiortc's Opus codec entry our format parameters (idempotent).

    aiortc builds offers and answers from one codec table whose Opus entry has no
    ``a=fmtp`` at all, and its codec preferences only accept entries of that table, so
    the parameters go into the table (process-wide; every peer connection here speaks
    for this box).
    """
    from aiortc.codecs import CODECS

    for codec in CODECS["audio"]:
        if codec_name(codec.mimeType) == "opus":
            codec.parameters.update(OPUS_FMTP)


def offer_opus(transceiver: Any) -> None:
    """Offer only Opus for the mic: the mic track sends Opus packets, which aiortc would
    send under whatever audio codec was negotiated."""
    from aiortc import RTCRtpSender

    declare_opus_fmtp()
    caps = RTCRtpSender.getCapabilities("audio").codecs
    transceiver.setCodecPreferences([c for c in caps if codec_name(c.mimeType) == "opus"])


#: What the box sends where a room refuses Opus (Janus picks by the room's order).
NARROWBAND = ("pcmu", "pcma", "g722")


def offer_narrowband(transceiver: Any) -> None:
    """Offer G.711 and G.722 for the mic, for a room that refused Opus."""
    from aiortc import RTCRtpSender

    caps = RTCRtpSender.getCapabilities("audio").codecs
    transceiver.setCodecPreferences([c for c in caps if codec_name(c.mimeType) in NARROWBAND])


def answered_codec(sdp: str, mid: str | None, kind: str = "video") -> str | None:
    """The codec the answer chose for the ``kind`` section ``mid`` (lower case), or None
    when the answer rejected that section (or has no such section at all)."""
    from aiortc.sdp import SessionDescription

    desc = SessionDescription.parse(sdp)
    for media in desc.media:
        if media.kind != kind or (mid is not None and media.rtp.muxId != mid):
            continue
        if media.port == 0 or media.direction == "inactive":
            return None
        for codec in media.rtp.codecs:
            name = codec_name(codec.mimeType)
            if name not in _AUXILIARY:
                return name
        return None
    return None


def room_codecs(entry: dict[str, Any] | None, key: str = "videocodec") -> list[str] | None:
    """The ``videocodec`` (or ``audiocodec``) list of a room's entry in the VideoRoom's
    list, or None when the room is not listed (private rooms are not)."""
    value = (entry or {}).get(key)
    if isinstance(value, str) and value:
        return [c.strip().lower() for c in value.split(",") if c.strip()]
    return None


VIDEO_CODEC_UNSUPPORTED = "VIDEO_CODEC_UNSUPPORTED"
AUDIO_NARROWBAND = "AUDIO_NARROWBAND"
ROOM_FULL = "ROOM_FULL"
AUDIO_CODEC_UNSUPPORTED = "AUDIO_CODEC_UNSUPPORTED"


def audio_unsupported_warning(entry: dict[str, Any] | None) -> dict[str, Any]:
    """The ``room-warning`` for a room that refused every audio codec the box sends
    (``entry``: the room's entry in the room list, None when it is not listed)."""
    codecs = room_codecs(entry, "audiocodec") or []
    ours = ", ".join(("opus", *NARROWBAND))
    allows = f"allows only {', '.join(codecs)} audio" if codecs else "allows none of them"
    return {"code": AUDIO_CODEC_UNSUPPORTED, "room_codecs": codecs,
            "supported": ["opus", *NARROWBAND],
            "message": f"this box sends {ours} audio; the room {allows}: "
                       f"in the room without its mic"}


def room_full_warning(reason: str) -> dict[str, Any]:
    """The ``room-warning`` while the room has all the publishers it takes."""
    return {"code": ROOM_FULL, "message": f"{reason}: listening until a publisher stops"}


def narrowband_warning(codec: str) -> dict[str, Any]:
    """The ``room-warning`` for a room that took no Opus: the box sends ``codec``."""
    return {"code": AUDIO_NARROWBAND, "codec": codec,
            "message": f"the room takes no Opus audio: this box sends {codec} "
                       f"(telephone quality, no loss protection)"}


def unsupported_warning(codecs: list[str]) -> dict[str, Any]:
    """The ``room-warning`` for a room that refused every video codec we can produce."""
    ours = ", ".join(PRODUCIBLE)
    if codecs:
        message = (f"the room allows only {', '.join(codecs)} video; this box sends {ours}: "
                   f"in the room with audio only")
    else:
        message = (f"the room allows none of the video codecs this box sends ({ours}): "
                   f"in the room with audio only")
    return {"code": VIDEO_CODEC_UNSUPPORTED, "message": message, "room_codecs": codecs,
            "supported": list(PRODUCIBLE)}
