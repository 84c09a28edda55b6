"""ICE consent (RFC 7675) survives answers that come late, and still expires when the far
end is gone: two real aioice connections over UDP between two namespaces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aioice.ice
import pytest
from aioice import Candidate, Connection, stun

from services.room import ice_consent
from tests.harness.netns import Network, NsLoop

pytestmark = [pytest.mark.timeout(120)]

#: The answers' delay: more than aioice's 0.5 s per check, as when a starved loop reads
#: its socket late
LATE_S = 1.0


@pytest.fixture
def original_consent() -> Iterator[None]:
    """aioice's own consent check (its 5 s interval shortened), whatever was installed
    before put back afterwards."""
    saved = Connection.query_consent, aioice.ice.CONSENT_INTERVAL
    Connection.query_consent = ice_consent.AIOICE_QUERY_CONSENT  # type: ignore[method-assign]
    aioice.ice.CONSENT_INTERVAL = 0.3  # 6 unanswered checks in about 5 s
    yield
    Connection.query_consent, aioice.ice.CONSENT_INTERVAL = saved  # type: ignore[method-assign]


@pytest.fixture
def fast_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ice_consent, "INTERVAL_S", 0.3)
    monkeypatch.setattr(ice_consent, "EXPIRY_S", 4.0)


class Pair:
    """A controlling connection in one namespace, a controlled one in another."""

    def __init__(self, network: Network) -> None:
        self.loops = [NsLoop(network.add_host("ca")), NsLoop(network.add_host("cb"))]
        self.conns: list[Connection] = [
            self.loops[0].run(self._new(True)), self.loops[1].run(self._new(False))]
        a, b = self.conns
        cands = [self.loops[i].run(self._gather(c)) for i, c in enumerate(self.conns)]
        for i, (me, other) in enumerate(((a, b), (b, a))):
            self.loops[i].run(self._remote(me, other, cands[1 - i]))
        futures = [loop.submit(c.connect()) for loop, c in zip(self.loops, self.conns,
                                                                 strict=True)]
        for f in futures:
            f.result(30)

    @staticmethod
    async def _new(controlling: bool) -> Connection:
        return Connection(ice_controlling=controlling, components=1, use_ipv6=False)

    @staticmethod
    async def _gather(conn: Connection) -> list[Candidate]:
        await conn.gather_candidates()
        return list(conn.local_candidates)

    @staticmethod
    async def _remote(me: Connection, other: Connection, cands: list[Candidate]) -> None:
        me.remote_username, me.remote_password = other.local_username, other.local_password
        for c in cands:
            await me.add_remote_candidate(c)
        await me.add_remote_candidate(None)

    def delay_answers(self, seconds: float) -> None:
        """The controlled side answers every check ``seconds`` late."""
        conn, loop = self.conns[1], self.loops[1]

        async def delay() -> None:
            for protocol in conn._protocols:
                send = protocol.send_stun

                def late(message: stun.Message, addr: tuple[str, int],
                         send: object = send) -> None:
                    if message.message_class == stun.Class.RESPONSE:
                        asyncio.get_running_loop().call_later(seconds, send, message, addr)
                    else:
                        send(message, addr)  # type: ignore[operator]

                protocol.send_stun = late  # type: ignore[method-assign]

        loop.run(delay())

    def silence(self) -> None:
        """The controlled side is gone: it answers nothing any more."""
        conn, loop = self.conns[1], self.loops[1]

        async def mute() -> None:
            for protocol in conn._protocols:
                protocol.send_stun = lambda message, addr: None  # type: ignore[method-assign]

        loop.run(mute())

    def closed(self) -> bool:
        """Whether the controlling side closed its connection (consent expired)."""
        async def state() -> bool:
            return not self.conns[0]._nominated

        return self.loops[0].run(state())

    def close(self) -> None:
        for loop, conn in zip(self.loops, self.conns, strict=True):
            loop.run(conn.close())
            loop.close()


@pytest.fixture
def pair_factory(network: Network) -> Iterator[list[Pair]]:
    made: list[Pair] = []
    yield made
    for p in made:
        p.close()


def _make(network: Network, made: list[Pair]) -> Pair:
    pair = Pair(network)
    made.append(pair)
    return pair


def _wait_closed(pair: Pair, timeout: float) -> float:
    """Seconds until the controlling side closed (or ``timeout``)."""
    start = time.monotonic()
    while not pair.closed() and time.monotonic() - start < timeout:
        time.sleep(0.25)
    return time.monotonic() - start


def test_late_answers_end_aioices_own_consent(network: Network, pair_factory: list[Pair],
                                              original_consent: None) -> None:
    """Without the fix, answers 1 s late expire consent: the check below can fail."""
    pair = _make(network, pair_factory)
    pair.delay_answers(LATE_S)
    _wait_closed(pair, 15.0)
    assert pair.closed(), "aioice's consent survived late answers: the test proves nothing"


def test_late_answers_keep_consent(network: Network, pair_factory: list[Pair],
                                   fast_consent: None) -> None:
    ice_consent.install()
    pair = _make(network, pair_factory)
    pair.delay_answers(LATE_S)
    time.sleep(3 * ice_consent.EXPIRY_S)
    assert not pair.closed()


def test_consent_expires_when_the_far_end_is_gone(network: Network,
                                                  pair_factory: list[Pair],
                                                  fast_consent: None) -> None:
    ice_consent.install()
    pair = _make(network, pair_factory)
    pair.silence()
    waited = _wait_closed(pair, 4 * ice_consent.EXPIRY_S)
    assert pair.closed()
    assert waited >= ice_consent.EXPIRY_S - 2 * ice_consent.INTERVAL_S
