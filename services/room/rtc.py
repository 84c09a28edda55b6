"""Small helpers around aiortc peer connections as Janus wants them."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from services.audio.narrowband import rtp_scale
from services.room import deadline, decoders, ice_consent
from services.room.api import RoomError
from services.room.negotiation import declare_opus_fmtp

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


def new_pc(label: str, max_bundle: bool = False) -> RTCPeerConnection:
    """A peer connection that asks no STUN server (the room server is on the LAN), and
    declares that it decodes Opus in-band FEC (:func:`declare_opus_fmtp`).

    ``max_bundle``: every transceiver on the first one's transport. A subscription whose
    offer brings two new video m-lines at once needs it: with aiortc's default (balanced)
    policy the second is bundled to the first's own transport, which the answer then
    drops, and its packets go to the first video's decoder."""
    declare_opus_fmtp()
    ice_consent.install()  # consent that a late loop does not end (RFC 7675 timing)
    decoders.install()  # one thread per received video stream's decoder
    policy = RTCBundlePolicy.MAX_BUNDLE if max_bundle else RTCBundlePolicy.BALANCED
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=policy))
    state = {"old": pc.connectionState}

    @pc.on("connectionstatechange")
    def _log_state() -> None:
        protection = ""
        if pc.connectionState == "connected":
            profiles = srtp_profiles(pc)
            protection = f" (media keys: {', '.join(profiles)})" if profiles else ""
        log.info("%s peer connection: %s -> %s%s", label, state["old"], pc.connectionState,
                 protection)
        state["old"] = pc.connectionState

    return pc


def srtp_profiles(pc: RTCPeerConnection) -> list[str]:
    """The SRTP profiles (OpenSSL's names) the DTLS handshakes of ``pc``'s media agreed
    on: the room server picks one of those offered, and this says which."""
    return sorted({getattr(t.sender.transport, "srtp_profile", "")
                   for t in pc.getTransceivers()} - {""})


def jsep_of(pc: RTCPeerConnection) -> dict[str, Any]:
    desc = pc.localDescription
    # aiortc gathers every candidate before the description is ready: no trickle.
    return {"type": desc.type, "sdp": desc.sdp, "trickle": False}


async def make_offer(pc: RTCPeerConnection) -> dict[str, Any]:
    await pc.setLocalDescription(await pc.createOffer())
    return jsep_of(pc)


async def answer_offer(pc: RTCPeerConnection, offer: dict[str, Any]) -> dict[str, Any]:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
    await pc.setLocalDescription(await pc.createAnswer())
    return jsep_of(pc)


async def accept_answer(pc: RTCPeerConnection, answer: dict[str, Any] | None) -> None:
    if answer is None:
        raise RoomError("the room server sent no SDP answer", code="NEGOTIATION_FAILED")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))


async def wait_connected(pc: RTCPeerConnection, label: str,
                         timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Wait until ICE and DTLS are up; raises RoomError on failure or timeout."""
    if pc.connectionState == "connected":
        return
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def check() -> None:
        if pc.connectionState in ("connected", "failed", "closed") and not done.done():
            done.set_result(pc.connectionState)

    pc.on("connectionstatechange", check)
    try:
        check()
        state = await deadline.wait_for(done, timeout)  # a late loop is not a failed link
    except TimeoutError:
        raise RoomError(f"{label} media did not connect in {timeout:.0f} s",
                        code="MEDIA_TIMEOUT") from None
    finally:
        pc.remove_listener("connectionstatechange", check)
    if state != "connected":
        raise RoomError(f"{label} media connection {state}", code="MEDIA_FAILED")


def watch_failure(pc: RTCPeerConnection, label: str, fail: Any) -> None:
    """Call ``fail(reason)`` when the connection fails or closes (ICE/DTLS failure)."""

    def check() -> None:
        if pc.connectionState in ("failed", "closed"):
            fail(f"{label} media connection {pc.connectionState}")

    pc.on("connectionstatechange", check)


class PacketTap(JitterBuffer):
    """Takes aiortc's place as an audio receiver's jitter buffer and hands every RTP
    packet, as it arrives, to ``sink(seq, timestamp, payload, arrival)``: the
    appliance's own jitter buffer (:class:`services.room.jitter.JitterBuffer`) orders,
    decodes and conceals them. Nothing goes to aiortc's decoder, so the track's
    ``recv()`` never yields a frame.

    The packet's payload type names its codec (``codec``: ``"opus"``, or G.711 or
    G.722 from a member in a room that prefers them, :mod:`services.audio.narrowband`);
    timestamps are handed on at 48 kHz. When the codec changes, ``on_codec(name)`` is
    told before the packet is handed on; ``on_level`` is told the audio level the
    packet carries (who is talking, :mod:`services.room.level_talk`), or None when it
    carries none (a room server that does not negotiate RFC 6464). Packets that come
    before a sink is connected are counted and dropped.
    """

    def __init__(self, capacity: int, codecs: dict[int, Any] | None = None) -> None:
        super().__init__(capacity=capacity, prefetch=0, is_video=False)
        self.sink: Callable[[int, int, bytes, float], None] | None = None
        self.on_codec: Callable[[str], None] | None = None
        #: Told each packet's RFC 6464 audio level (0 loudest, 127 silence), None for a
        #: packet without one.
        self.on_level: Callable[[int | None], None] | None = None
        #: Packets handed on without an audio level.
        self.without_level = 0
        self.codec = "opus"
        self.received = 0
        self.unclaimed = 0
        self._codecs = codecs if codecs is not None else {}  # the receiver's, by type
        self._types: dict[int, tuple[str, int]] = {}  # payload type -> (name, scale)

    def _codec_of(self, payload_type: int) -> tuple[str, int]:
        known = self._types.get(payload_type)
        if known is None:
            codec = self._codecs.get(payload_type)
            if codec is None:
                return self.codec, 1
            name = codec.mimeType.split("/")[-1].lower()
            known = (name, 1 if name == "opus" else rtp_scale(codec.clockRate))
            self._types[payload_type] = known
        return known

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        data: bytes = getattr(packet, "_data", b"")
        self.received += 1
        sink = self.sink
        if sink is None:
            self.unclaimed += 1
        elif data:  # padding only: nothing to decode
            timestamp = packet.timestamp
            name, scale = self._codec_of(packet.payload_type)
            if name != self.codec:
                log.info("audio receiver: the voice comes in %s", name)
                self.codec = name
                if self.on_codec is not None:
                    self.on_codec(name)
            if scale != 1:
                timestamp = (timestamp * scale) & 0xFFFFFFFF
            sink(packet.sequence_number, timestamp, data, time.monotonic())
            level, on_level = packet.extensions.audio_level, self.on_level
            if level is None:
                self.without_level += 1
            if on_level is not None:
                on_level(None if level is None else level[1])
        return False, None


_taps: weakref.WeakKeyDictionary[Any, PacketTap] = weakref.WeakKeyDictionary()


def tap_audio_packets(receiver: Any) -> PacketTap | None:
    """Put a :class:`PacketTap` in an audio receiver, in place of aiortc's jitter buffer.

    Must run before media flows (from the ``track`` event); idempotent. It uses aiortc
    internals (the receiver's name-mangled ``__jitter_buffer``, and the depayloaded
    ``packet._data`` it hands that buffer), so it checks them and leaves the receiver
    alone (returning None: the mixer then reads decoded frames from the track) if they
    differ.
    """
    attr = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, attr, None)
    if isinstance(current, PacketTap):
        return current
    if not isinstance(current, JitterBuffer) or getattr(current, "_is_video", True):
        log.warning("audio receive path not tapped (aiortc internals differ): "
                    "playing aiortc's decoded frames")
        return None
    tap = PacketTap(current.capacity, getattr(receiver, "_RTCRtpReceiver__codecs", None))
    setattr(receiver, attr, tap)
    _taps[receiver.track] = tap
    return tap


def packet_tap(track: Any) -> PacketTap | None:
    """The :class:`PacketTap` feeding ``track``'s packets, if its receiver has one."""
    try:
        return _taps.get(track)
    except TypeError:  # not weak-referenceable: not an aiortc track
        return None


async def close_pc(pc: RTCPeerConnection) -> None:
    """Close ``pc`` without blocking the event loop: its receivers' decoder threads are
    told to end and not waited for (:mod:`services.room.decoders`, installed again here
    for a connection not made by :func:`new_pc`)."""
    decoders.install()
    await pc.close()
