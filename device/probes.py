"""The watchdog's health probes: each subsystem shows progress while it has work.

``mic``      frames arrive while the capture device is open
``speaker``  the speaker takes writes while the room plays it (not while it rests)
``camera``   frames arrive while the camera is open
``janus``    the Janus session answers its keepalives while in a room

A probe that shows no progress for longer than its grace time withholds the systemd
watchdog ping (see :mod:`device.notify`), so systemd restarts the service. Idle
subsystems (no room, mic closed) pass, and so does an audio device its driver is
reopening after it was lost (an unplugged USB mic comes back by itself).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from device.supervisor import CounterProgress
from services.room.api import RoomState

if TYPE_CHECKING:
    from device.host import Host

log = logging.getLogger(__name__)

#: Seconds without progress before a probe fails. Janus answers a keepalive every 25 s
#: (each may take up to 10 s); a camera may take a few seconds to start.
GRACE: dict[str, float] = {"mic": 5.0, "speaker": 5.0, "camera": 10.0, "janus": 60.0}


def add_probes(app: Host) -> None:
    """Register the probes of the subsystems ``app`` has (they look the parts up each
    time: the room session is rebuilt when its config changes)."""
    from services.media.service import MediaService

    sup = app.supervisor
    media = app.media
    if isinstance(media, MediaService):
        tee = media.mic
        if tee is not None:
            sup.add_probe("mic", tee.last_progress, GRACE["mic"])
        video = media.video
        sup.add_probe("camera", CounterProgress(
            lambda: video.frames_in if video.is_running else None), GRACE["camera"])

    def speaker_frames() -> int | None:
        room = app.room
        speaker = getattr(room, "speaker", None)
        mixer = getattr(room, "mixer", None)
        if (room is None or speaker is None or mixer is None or room.state != RoomState.IN_ROOM
                or not mixer.running or mixer.sink is None or getattr(speaker, "lost", False)
                or getattr(room, "speaker_state", "playing") != "playing"):
            return None
        return int(speaker.stats.get("frames", 0))

    def keepalive() -> float | None:
        room = app.room
        progress = getattr(room, "keepalive_progress", None)
        return progress() if callable(progress) else None

    sup.add_probe("speaker", CounterProgress(speaker_frames), GRACE["speaker"])
    sup.add_probe("janus", keepalive, GRACE["janus"])
