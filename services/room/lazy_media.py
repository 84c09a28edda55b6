"""The room's media modules, imported on the first join instead of at start.

aiortc and PyAV are the largest imports of the appliance (about 35 MB and a second of
CPU on a Pi). A box that is not in a room does not load them; the first join imports
them in a thread, so the event loop keeps running meanwhile.
"""

from __future__ import annotations

import importlib

from drivers.common.malloc import freeze_imported

#: What a stay in the room uses that pulls in aiortc and PyAV.
ROOM_MEDIA_MODULES = ("services.room.janus.videoroom", "services.room.janus.audiobridge",
                      "services.room.janus.textroom", "services.room.rtc", "services.room.tracks",
                      "services.media.track", "numpy")


_imported = False


def import_room_media() -> None:
    """Import the room's media modules (blocking: run it in a thread); the first time, keep
    what they made out of later full collections (:func:`drivers.common.malloc.freeze_imported`)."""
    global _imported
    if _imported:
        return
    for name in ROOM_MEDIA_MODULES:
        importlib.import_module(name)
    freeze_imported()
    _imported = True
