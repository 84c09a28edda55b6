"""The socket a thread sends a connection's RTP on: a duplicate of the nominated ICE
pair's, so that the thread never calls into the event loop's transport."""

from __future__ import annotations

import socket
from typing import Any


def nominated_pair(dtls: Any) -> Any:
    """The nominated ICE candidate pair under ``dtls`` (None while there is none)."""
    nominated = getattr(getattr(dtls.transport, "_connection", None), "_nominated", None)
    return nominated.get(1) if nominated else None


class PairSocket:
    """Follows the nominated pair of ``dtls``: a new duplicate when ICE nominates another
    pair. Used by one thread at a time (the sender's own lock)."""

    def __init__(self, dtls: Any) -> None:
        self._dtls = dtls
        self._pair: Any = None
        self._socket: socket.socket | None = None
        self._addr: Any = None

    def target(self) -> tuple[socket.socket | None, Any]:
        """The socket and remote address of the nominated pair (None: no pair yet)."""
        pair = nominated_pair(self._dtls)
        if pair is not self._pair:
            self._pair = pair
            self.close()
            transport = getattr(getattr(pair, "protocol", None), "transport", None)
            shared = transport.get_extra_info("socket") if transport is not None else None
            if shared is not None:
                self._socket = shared.dup()
                self._addr = pair.remote_addr
        return self._socket, self._addr

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
