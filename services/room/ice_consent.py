"""ICE consent freshness (RFC 7675) that a late event loop does not end.

aioice checks consent every 5 s with one binding request that gets 0.5 s to be
answered, and closes the connection after 6 checks in a row went unanswered. On a box
whose CPU is short (a Pi under load, or a CPU quota), the loop reads its sockets late:
the answer is there, but queued behind the media that came first, and is read after the
0.5 s are up. Every check then "fails" although the far end answers each one, and
half a minute into the starvation the box drops a working call and rejoins (seen at a
10 % CPU quota).

RFC 7675 says what consent is: it expires when no answer to a check has come for 30 s.
:func:`install` makes aioice's connections check it that way: each check is sent again
on RFC 5389's schedule (0.5, 1, 2, 4 s) until answered, any answer counts, and the
connection closes once :data:`EXPIRY_S` have passed since the last one. A far end that
is really gone is still given up on, after the same 30 s or so as before.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from aioice import stun
from aioice.ice import Connection

log = logging.getLogger(__name__)

#: How often consent is checked (RFC 7675: 4-6 s, randomized)
INTERVAL_S = 5.0
#: How long without any answer before consent has expired (RFC 7675: 30 s)
EXPIRY_S = 30.0
#: Retransmissions of one check (RFC 5389 timing: answered within 7.5 s or given up)
RETRANSMISSIONS = 3


#: aioice's own check, as it came (for comparison)
AIOICE_QUERY_CONSENT = Connection.query_consent


async def _query_consent(self: Connection) -> None:
    assert self.remote_password is not None
    key = self.remote_password.encode("utf8")
    answered = time.monotonic()
    while True:
        await asyncio.sleep(INTERVAL_S * (0.8 + 0.4 * random.random()))
        for pair in list(self._nominated.values()):
            request = self.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(request, pair.remote_addr, integrity_key=key,
                                            retransmissions=RETRANSMISSIONS)
                answered = time.monotonic()
            except stun.TransactionError:
                pass
        silent = time.monotonic() - answered
        if silent >= EXPIRY_S:
            log.warning("ICE consent expired: no answer to consent checks for %.0f s", silent)
            self._query_consent_task = None
            await self.close()
            return


def install() -> None:
    """Use this consent check in every aioice connection made from now on (idempotent)."""
    Connection.query_consent = _query_consent  # type: ignore[method-assign]
