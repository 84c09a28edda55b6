"""After joining, the appliance gives the C heap's free pages back to the system once."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

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
