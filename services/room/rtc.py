"""Small helpers around aiortc peer connections as Janus wants them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

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
#: (a constant 80 ms); the mixer's own playout buffer absorbs scheduling jitter, so on
#: a LAN 2 (40 ms) is enough.
AUDIO_PREFETCH = 2


def shorten_audio_jitter_buffer(receiver: Any, prefetch: int = AUDIO_PREFETCH) -> bool:
    """Give an audio receiver a jitter buffer that holds ``prefetch`` packets.

    Must run before media flows (from the ``track`` event). Uses aiortc internals, so it
    checks them and leaves the receiver alone (returning False) if they differ.
    """
    from aiortc.jitterbuffer import JitterBuffer

    attr = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, attr, None)
    if not isinstance(current, JitterBuffer) or getattr(current, "_is_video", True):
        log.debug("audio jitter buffer not adjusted (aiortc internals differ)")
        return False
    setattr(receiver, attr, JitterBuffer(capacity=current.capacity, prefetch=prefetch))
    return True
