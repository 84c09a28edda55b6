"""Timeouts that a late event loop does not trip.

On a starved CPU (a CPU quota, a loaded Pi) the event loop can fall seconds behind. A
plain ``asyncio.timeout`` then fires as soon as the loop runs again, in the same pass that
brings in the answer it was waiting for: the answer is in the socket, or a callback or
two away from its future (a socket read, the reader task, the waiter), and the box gives
up on a server that did answer in time. It then tears a working call down and builds it
again. Here a deadline counts only time the loop was there to see an answer:

- when the deadline passes, the loop first gets a few passes (:data:`PASSES`) to take in
  what already arrived, and the answer wins if it came;
- if the loop woke up late for the deadline (it was stalled past it by more than
  :data:`LATE_S`), the wait goes on for as long as it was late: the stall was the box's,
  not the other side's silence. All the extensions together stay within another
  ``timeout``, so a server that is really gone is still given up on, after at most twice
  the timeout on a starved loop and after the timeout itself on a punctual one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Loop passes given to input that arrived while the loop was stalled past a deadline.
PASSES = 6
#: Waking this much after the deadline means the loop was stalled, not the other side.
LATE_S = 0.2


async def wait_for(aw: Awaitable[T], timeout: float) -> T:
    """``await aw`` within ``timeout`` seconds of the loop's own time; raises TimeoutError
    (and cancels ``aw``) only when the answer did not come although the loop was there
    to see it (see the module's description)."""
    loop = asyncio.get_running_loop()
    fut = asyncio.ensure_future(aw)
    deadline = loop.time() + timeout
    extended = 0.0
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining > 0:
                await asyncio.wait((fut,), timeout=remaining)
                if fut.done():
                    return fut.result()
            late = loop.time() - deadline
            for _ in range(PASSES):  # what is in the socket already gets its turn
                await asyncio.sleep(0)
                if fut.done():
                    if late > LATE_S:
                        log.info("an answer came %.1f s after its deadline: the loop "
                                 "was late, not the other side", late)
                    return fut.result()
            grant = min(late, timeout - extended)
            if late <= LATE_S or grant <= 0:
                raise TimeoutError
            extended += grant
            deadline = loop.time() + grant
            log.info("the loop was %.1f s late for a %.0f s deadline; waiting %.1f s more",
                     late, timeout, grant)
    finally:
        if not fut.done():
            fut.cancel()
