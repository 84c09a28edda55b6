"""Small helpers around aiortc peer connections as Janus wants them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from services.room.api import RoomError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


def new_pc(label: str) -> RTCPeerConnection:
    """A peer connection that asks no STUN server (the room server is on the LAN)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    state = {"old": pc.connectionState}

    @pc.on("connectionstatechange")
    def _log_state() -> None:
        log.info("%s peer connection: %s -> %s", label, state["old"], pc.connectionState)
        state["old"] = pc.connectionState

    return pc


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
        async with asyncio.timeout(timeout):
            state = await done
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


#: Packets aiortc's audio jitter buffer holds back before releasing one. aiortc uses 4
#: (a constant 80 ms); its buffer releases a frame only when the next one arrives, so 1
#: still holds 20 ms. 0 hands every audio packet to the decoder as it arrives
#: (:class:`ImmediateAudioBuffer`): the mixer's adaptive playout buffer absorbs jitter
#: and conceals late or lost packets.
AUDIO_PREFETCH = 0


class ImmediateAudioBuffer(JitterBuffer):
    """An audio "jitter buffer" that holds nothing: each RTP packet is a whole Opus frame.

    A packet newer than the last one released goes to the decoder at once; a late
    (reordered) or repeated one is dropped, as the moment to play it has passed.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity=capacity, prefetch=0, is_video=False)
        self._last_seq: int | None = None
        self.released = 0
        self.dropped_late = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        data: bytes = getattr(packet, "_data", b"")
        seq = packet.sequence_number
        if self._last_seq is not None:
            ahead = (seq - self._last_seq) & 0xFFFF
            if ahead == 0 or ahead >= 0x8000:
                self.dropped_late += 1
                return False, None
        self._last_seq = seq
        if not data:  # padding only: nothing to decode
            return False, None
        self.released += 1
        return False, JitterFrame(data=data, timestamp=packet.timestamp)


def shorten_audio_jitter_buffer(receiver: Any, prefetch: int = AUDIO_PREFETCH) -> bool:
    """Give an audio receiver a jitter buffer that holds ``prefetch`` packets (0: none).

    Must run before media flows (from the ``track`` event). Uses aiortc internals, so it
    checks them and leaves the receiver alone (returning False) if they differ.
    """
    attr = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, attr, None)
    if not isinstance(current, JitterBuffer) or getattr(current, "_is_video", True):
        log.debug("audio jitter buffer not adjusted (aiortc internals differ)")
        return False
    if prefetch <= 0:
        setattr(receiver, attr, ImmediateAudioBuffer(capacity=current.capacity))
    else:
        setattr(receiver, attr, JitterBuffer(capacity=current.capacity, prefetch=prefetch))
    return True


_STOP_DECODER = "_RTCRtpReceiver__stop_decoder"


async def close_pc(pc: RTCPeerConnection) -> None:
    """Close ``pc`` without blocking the event loop.

    aiortc's receiver joins its decoder thread when it stops, on the loop; that waits for
    the frame being decoded. The decoder threads are stopped from a worker thread first,
    so the close finds them gone. (aiortc internals: checked, and skipped if they differ.)
    """
    stops: list[Any] = [getattr(t.receiver, _STOP_DECODER, None) for t in pc.getTransceivers()]

    def stop_decoders() -> None:
        for stop in stops:
            if callable(stop):
                stop()

    if any(callable(stop) for stop in stops):
        await asyncio.to_thread(stop_decoders)
    await pc.close()
