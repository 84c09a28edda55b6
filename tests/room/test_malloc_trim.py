"""After joining, the appliance gives the C heap's free pages back to the system once; after
a stay in a room ends, what it left in reference cycles (its peer connections, transports,
codecs) is collected at once, not whenever Python's collector next runs in full."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import time
import weakref
from typing import Any

import pytest

from drivers.common import malloc
from services.room import session as session_module

pytestmark = [pytest.mark.timeout(90)]

#: A thread fills its own malloc arena with small blocks and frees all but every 64th
#: (so nothing is at the top of a heap to return by itself); then trim() runs.
_FRAGMENTED = """
import threading
from drivers.common.malloc import rss_bytes, trim
keep = []
def fill():
    blocks = [bytearray(1000) for _ in range(60000)]
    keep.extend(blocks[::64])
    del blocks
t = threading.Thread(target=fill); t.start(); t.join()
before = rss_bytes()
assert trim()
print(before - rss_bytes())
"""


def test_trim_gives_freed_pages_back() -> None:
    out = subprocess.run([sys.executable, "-c", _FRAGMENTED], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert int(out) > 20_000_000  # of ~60 MB freed, most comes back


@pytest.mark.janus
def test_the_heap_is_trimmed_after_joining(make_peer: Any, room_number: int,
                                           monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(session_module, "TRIM_AFTER_JOIN_S", 0.5)
    caplog.set_level(logging.INFO, logger="drivers.common.malloc")
    box = make_peer("box", room_number, tone="tone:440")
    box.call(lambda s: s.join())
    box.wait_for(lambda: any("given back to the system after joining" in r.getMessage()
                             for r in caplog.records), timeout=10,
                 what="the trim after joining")


@pytest.mark.janus
def test_a_finished_stay_is_collected(make_peer: Any, room_number: int,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="drivers.common.malloc")
    box = make_peer("box", room_number, tone="tone:440")
    box.call(lambda s: s.join())
    stay = box.call(lambda s: [s._backend, s._ctx, *s._backend.peer_connections().values()])
    assert len(stay) == 3  # the backend, its context, the publisher's peer connection
    refs = [weakref.ref(o) for o in stay]
    del stay
    gc.disable()  # only the appliance's own collection may free them
    try:
        left = time.monotonic()
        box.call(lambda s: s.leave())
        box.wait_for(lambda: all(r() is None for r in refs),
                     timeout=malloc.RECLAIM_AFTER_S + 5.0, what="the stay's objects freed")
        took = time.monotonic() - left
    finally:
        gc.enable()
    assert took >= malloc.RECLAIM_AFTER_S * 0.9  # by the reclaimer, not as the stay ended
    box.wait_for(lambda: any("objects collected after a stay in the room" in r.getMessage()
                             for r in caplog.records), timeout=10, what="the reclaimer's log")
