"""The page's live camera preview over WebRTC, straight from the appliance to the browser.

The page offers a receive-only video transceiver; aiortc answers with a track of the
shared encoder's packets in one codec of the offer: the one the encoder already produces
for the room when the browser takes it (no second encode), else H.264, else VP8. The
camera runs while a preview is open. At most :data:`MAX_PEERS` previews exist at once;
one session has at most one (a new offer replaces its previous preview). A preview closes
when the browser closes its peer connection (page unload), when ICE or DTLS fail, when it
does not connect within :data:`CONNECT_TIMEOUT` seconds, and when its session ends
(logout, expiry, password change).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.errors import EdgeroomError

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCPeerConnection

log = logging.getLogger(__name__)

PREVIEW = "preview"
MAX_PEERS = 2
#: What the shared encoder can produce, in the order a preview takes them by default.
PREVIEW_CODECS = ("h264", "vp8")
CONNECT_TIMEOUT = 20.0
SESSION_CHECK_INTERVAL = 2.0


class PreviewError(EdgeroomError, RuntimeError):
    """The preview could not be set up (``status`` is the HTTP status to answer)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(eq=False)
class _Peer:
    pc: RTCPeerConnection
    session: str
    track: MediaStreamTrack | None
    watcher: asyncio.Task[None] | None = None


class CameraPreview:
    """WebRTC previews fed by ``track_factory`` (a new encoded-video track per preview).

    ``alive(session)`` tells whether a page session still exists. ``preferred()`` lists
    codecs to try first (those the encoder produces now). Register it as
    ``app.extras["preview"]``; :meth:`close` ends every preview (idempotent).
    """

    def __init__(self, track_factory: Callable[[], MediaStreamTrack],
                 max_peers: int = MAX_PEERS,
                 preferred: Callable[[], Sequence[str]] = lambda: ()) -> None:
        self._track_factory = track_factory
        self._preferred = preferred
        self.max_peers = max_peers
        self._peers: list[_Peer] = []
        self.opened = 0

    def __repr__(self) -> str:
        return f"<CameraPreview peers={len(self._peers)}/{self.max_peers}>"

    @property
    def peers(self) -> int:
        return len(self._peers)

    async def answer(self, sdp: str, session: str,
                     alive: Callable[[str], bool]) -> dict[str, str]:
        """Answer the page's offer with the camera's track; returns ``{"sdp", "type"}``."""
        for old in [p for p in self._peers if p.session == session]:
            await self._close(old, "replaced by a new preview")
        if len(self._peers) >= self.max_peers:
            raise PreviewError(503, "PREVIEW_BUSY",
                               f"{self.max_peers} camera previews are open already")
        await asyncio.to_thread(importlib.import_module, "aiortc")  # first preview: not on the loop
        from aiortc import (  # imported when a preview opens: an idle box never loads it
            RTCConfiguration,
            RTCPeerConnection,
            RTCSessionDescription,
        )

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer = _Peer(pc, session, None)
        try:
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise PreviewError(400, "BAD_REQUEST", f"sdp: not a usable offer: {exc}") from None
            video = [t for t in pc.getTransceivers() if t.kind == "video"]
            if len(video) != 1:
                raise PreviewError(400, "BAD_REQUEST",
                                   "sdp: the offer must have exactly one video section")
            transceiver = video[0]
            if getattr(transceiver, "_offerDirection", None) not in ("sendonly", "sendrecv"):
                raise PreviewError(400, "BAD_REQUEST",
                                   "sdp: the video section must be able to receive")
            # answer with exactly the one codec the track will send
            codec, chosen = self._choose(transceiver._codecs)
            types = {c.payloadType for c in chosen}
            transceiver._codecs = chosen + [
                c for c in transceiver._codecs if c.mimeType.lower() == "video/rtx"
                and c.parameters.get("apt") in types]
            peer.track = self._track_factory()
            set_codec = getattr(peer.track, "set_codec", None)
            if set_codec is not None:
                set_codec(codec)
            transceiver.sender.replaceTrack(peer.track)
            transceiver.direction = "sendonly"
            try:
                await pc.setLocalDescription(await pc.createAnswer())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise PreviewError(400, "BAD_REQUEST", f"sdp: cannot answer: {exc}") from None
        except BaseException:
            await self._close(peer, "offer refused")
            raise
        self._peers.append(peer)
        self.opened += 1
        peer.watcher = asyncio.create_task(self._watch(peer, session, alive),
                                           name="web:camera-preview")
        log.info("camera preview opened (%d open)", len(self._peers))
        desc = pc.localDescription
        return {"sdp": desc.sdp, "type": desc.type}

    def _choose(self, offered: list[Any]) -> tuple[str, list[Any]]:
        """The codec to send (from the offer) and its entries in the offer."""
        order = [*self._preferred(), *PREVIEW_CODECS]
        for codec in order:
            if codec not in PREVIEW_CODECS:
                continue
            matching = [c for c in offered if c.mimeType.lower() == f"video/{codec}"]
            if matching:
                return codec, matching
        raise PreviewError(400, "BAD_REQUEST", "sdp: the offer has neither H.264 nor VP8 "
                                               "video")

    async def _watch(self, peer: _Peer, session: str, alive: Callable[[str], bool]) -> None:
        """Close ``peer`` when it fails, does not connect in time, or its session ends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT
        changed = asyncio.Event()
        peer.pc.on("connectionstatechange", changed.set)
        reason = "session ended"
        try:
            while alive(session):
                state = peer.pc.connectionState
                if state in ("failed", "closed"):
                    reason = f"connection {state}"
                    break
                if state != "connected" and loop.time() > deadline:
                    reason = "did not connect"
                    break
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), SESSION_CHECK_INTERVAL)
                except TimeoutError:
                    pass
        finally:
            peer.watcher = None  # closing must not cancel the task it runs in
            await self._close(peer, reason)

    async def _close(self, peer: _Peer, reason: str) -> None:
        if peer in self._peers:
            self._peers.remove(peer)
            log.info("camera preview closed: %s (%d open)", reason, len(self._peers))
        watcher, peer.watcher = peer.watcher, None
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if peer.track is not None:
            peer.track.stop()
        await peer.pc.close()

    async def close(self) -> None:
        """End every preview (idempotent)."""
        for peer in list(self._peers):
            await self._close(peer, "shutdown")

    def status(self) -> dict[str, Any]:
        return {"peers": len(self._peers), "max_peers": self.max_peers, "opened": self.opened}


def preview_of(extras: dict[str, Any]) -> CameraPreview | None:
    preview = extras.get(PREVIEW)
    return preview if isinstance(preview, CameraPreview) else None
