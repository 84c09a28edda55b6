"""What the appliance imports at start leaves out the media libraries: PyAV, aiortc and
the certificate library load when a room, recording, stream, preview or HTTPS first
needs them; numpy (about 18 MB) when audio or video first runs through a module that
computes with it (the appliance-level check is in tests/media/test_idle.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.harness.appliance import REPO

HEAVY = ("av", "aiortc", "aioice", "pylibsrtp", "cryptography", "OpenSSL", "dns", "numpy")

PROBE = """
import sys
from device import app, wiring
wiring.import_services()
# what an idle sim appliance opens: the sim audio devices and the speaker's playout
import drivers.audio.sim, services.playback.speaker, services.room
print(" ".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))))
"""

ROOM = """
import sys
from device import wiring
from services.room.lazy_media import import_room_media
wiring.import_services()
import_room_media()
print(" ".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))))
"""


def _imported(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code, *HEAVY], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return set(out.split())


def test_start_imports_no_media_library() -> None:
    assert _imported(PROBE) == set()


def test_the_room_imports_them() -> None:
    """The same probe sees them once the room's modules are loaded (so it can fail); the
    room's DTLS and SRTP run on the system's OpenSSL, so aiortc's pyOpenSSL,
    cryptography and pylibsrtp stay out (``services.room.dtls``), as does aioice's
    dnspython until an mDNS name is resolved (``services.room.mdns``)."""
    room = _imported(ROOM)
    assert {"av", "aiortc"} <= room
    assert not {"pylibsrtp", "cryptography", "OpenSSL", "dns"} & room


MIC = """
import sys
from services.room.tracks import MicTrack
from services.room.opus_send import OpusSendEncoder
OpusSendEncoder()
print(" ".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))))
"""


def test_numpy_loads_with_the_first_audio_it_computes() -> None:
    """The modules that use numpy import it on first use (``drivers.lazy``): importing
    them costs nothing, encoding the mic loads it (so the probe can see it)."""
    assert "numpy" in _imported(MIC)


FIRST_MIC = """
import asyncio, importlib.abc, json, sys, tempfile, threading
from pathlib import Path

where = []

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            where.append(threading.current_thread().name)
        return None

sys.meta_path.insert(0, Watch())
from drivers.audio.sim import SimMic
from services.media.audio import MicTee

async def main():
    tee = MicTee(lambda: SimMic("tone:440", state_dir=Path(tempfile.mkdtemp())))
    branch = tee.branch("probe")
    await branch.start()
    await branch.read()
    await branch.stop()
    print(threading.current_thread().name, json.dumps(where))

asyncio.run(main())
"""


def test_the_first_mic_imports_numpy_off_the_event_loop() -> None:
    """numpy's import is 0.2 s of CPU here and most of a second on a Pi: the first mic
    does it in a thread, not on the loop that carries the audio."""
    out = subprocess.run([sys.executable, "-c", FIRST_MIC], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split(maxsplit=1)
    loop_thread, importers = out[0], json.loads(out[1])
    assert importers, "numpy was never imported: the probe proves nothing"
    assert loop_thread not in importers[:1]


FROZEN = """
import gc, json
from device import wiring
from services.room.lazy_media import import_room_media
wiring.import_services()
start = gc.get_freeze_count()
import_room_media()
room = gc.get_freeze_count()
import_room_media()  # a later join: nothing more is frozen
print(json.dumps([start, room, gc.get_freeze_count(), len(gc.get_objects())]))
"""


def test_what_the_imports_made_is_kept_out_of_full_collections() -> None:
    """Once the start-up imports are done, and once the room's, every object then alive
    (modules, classes, tables) is frozen: a full collection (after each stay in a room)
    walks only what the box made since. Later joins freeze nothing more."""
    out = subprocess.run([sys.executable, "-c", FROZEN], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    start, room, later, tracked = json.loads(out)
    assert start > 10_000
    assert room > start + 10_000  # aiortc, PyAV, numpy and the room's own modules
    assert later == room
    assert tracked < room / 10  # what a full collection still walks
