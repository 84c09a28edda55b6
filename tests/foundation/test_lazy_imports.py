"""What the appliance imports at start leaves out the media libraries: PyAV, aiortc and
the certificate library load when a room, recording, stream, preview or HTTPS first
needs them; numpy (about 18 MB) when audio or video first runs through a module that
computes with it (the appliance-level check is in tests/media/test_idle.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.harness.appliance import REPO

HEAVY = ("av", "aiortc", "aioice", "pylibsrtp", "cryptography", "numpy")

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
    """The same probe sees them once the room's modules are loaded (so it can fail)."""
    assert {"av", "aiortc", "pylibsrtp"} <= _imported(ROOM)


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
