"""One lock around a DTLS transport's outbound SRTP session, for senders in several threads.

With BUNDLE every stream of a connection (the mic's Opus, sent on the event loop; the
camera's video, sent from its encoder's thread; aiortc's RTCP reports and NACK answers,
on the loop) is protected by one SRTP session: ``RTCDtlsTransport._tx_srtp``
(:class:`services.room.dtls.srtp.SrtpSession`). Its rollover counters, and the OpenSSL
cipher contexts and output buffers it reuses for every packet, may not be used by two
threads at once.

:func:`locked_tx_session` replaces that session, once per transport, by a
:class:`LockedSrtpSession` that makes every call to it hold one lock. Every caller of the
outbound session goes through the attribute, so all of them take the lock: aiortc's own
``_send_rtp`` (RTP retransmissions, RTCP sender reports, receiver reports, PLI, BYE), the
room's frame senders on the loop and the video sender in the encoder's thread. The lock
is held for one ``protect`` call and nothing else (a few microseconds).

The replacement must happen on the event loop, before a second thread uses the session:
the loop's senders read the attribute at each call, so none of them can be halfway
through a call on the bare session when it is swapped.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class LockedSrtpSession:
    """An SRTP session whose calls hold :attr:`lock` (any thread)."""

    __slots__ = ("_session", "calls", "lock")

    def __init__(self, session: Any) -> None:
        self._session = session
        self.lock = threading.Lock()
        #: protect calls made through the lock (read by tests and stats)
        self.calls = 0

    def __repr__(self) -> str:
        return f"<LockedSrtpSession calls={self.calls} {self._session!r}>"

    @property
    def session(self) -> Any:
        """The bare session (use it only while holding :attr:`lock`)."""
        return self._session

    def protect(self, packet: bytes) -> bytes:
        with self.lock:
            self.calls += 1
            result: bytes = self._session.protect(packet)
        return result

    def protect_rtcp(self, packet: bytes) -> bytes:
        with self.lock:
            self.calls += 1
            result: bytes = self._session.protect_rtcp(packet)
        return result

    def unprotect(self, packet: bytes) -> bytes:
        with self.lock:
            result: bytes = self._session.unprotect(packet)
        return result

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        with self.lock:
            result: bytes = self._session.unprotect_rtcp(packet)
        return result


def locked_tx_session(dtls: Any) -> LockedSrtpSession | None:
    """The locked outbound session of ``dtls``, installed on first call (on the event
    loop); None while the transport has no session yet (DTLS not connected)."""
    session = getattr(dtls, "_tx_srtp", None)
    if session is None:
        return None
    if isinstance(session, LockedSrtpSession):
        return session
    locked = LockedSrtpSession(session)
    dtls._tx_srtp = locked
    log.debug("outbound SRTP session of %r now locked", dtls)
    return locked
