"""Playbacks, announcements and the input sensitivity: the services behind their actions.

:func:`compose` builds the playback manager and the talking detector behind the
``play``, ``playback`` and ``sensitivity`` actions (:mod:`device.live_actions`) from the
config, plays the ``announce`` custom messages, and registers the ``talk`` subsystem.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

from drivers.common.actions import ActionError
from services.room.api import RoomState

if TYPE_CHECKING:
    from device.host import Host
    from drivers.common.bus import Event

log = logging.getLogger(__name__)

#: The custom message another member sends to have this box say or play something.
ANNOUNCE_CMD = "announce"
#: The longest spoken announcement, in characters.
ANNOUNCE_TEXT_MAX = 500
#: Events that can change whether the box's mic can talk (the talking detector looks
#: again at once; out of a room it looks only once a second otherwise)
WAKES_TALK = frozenset({"room-state", "controls", "mic-open"})


# -- wiring ----------------------------------------------------------------------------


def compose(app: Host) -> None:
    """Build the playback manager and the talking detector; register ``talk``."""
    from services.audio.talk import LocalTalkDetector, TalkSettings
    from services.playback.manager import PlaybackManager, PlaybackSettings

    manager = PlaybackManager(PlaybackSettings(media_dir=app.state_dir,
                                               work_dir=app.state_dir / "playback-tts"),
                              emit=app.bus.publish)
    app.dispatcher.playbacks = manager
    app.status_providers.add("playbacks", manager.list)

    def volume_db() -> float:
        """The room's mic volume in dB: the level the room hears is the mic's moved by it."""
        room = app.room
        percent = room.controls.mic_volume if room is not None else 100
        return 20.0 * math.log10(percent / 100) if percent > 0 else -math.inf

    def level() -> float | None:
        mic = getattr(app.media, "mic", None)
        return None if mic is None else float(mic.level_dbfs)

    def active() -> bool:
        room = app.room
        if room is None:
            return False
        room.local_talk_detected = True  # type: ignore[attr-defined]
        c = room.controls
        return (room.state == RoomState.IN_ROOM and bool(getattr(room, "mic_open", True))
                and c.mic_enabled and not c.deaf)

    detector = LocalTalkDetector(TalkSettings(sensitivity=app.config.audio.input_sensitivity),
                                 level, active, emit=app.bus.publish, gain_db=volume_db)
    listen = getattr(getattr(app.media, "mic", None), "add_level_listener", None)
    if listen is not None:  # it looks as the mic's frames come, with no timer of its own
        listen(detector.on_level)
    app.dispatcher.talk = detector
    app.status_providers.add("sensitivity", detector.to_dict)
    background: set[asyncio.Task[Any]] = set()

    def on_event(event: Event) -> None:
        if event.name in WAKES_TALK:
            detector.wake()
        if event.name == "room-state" and event.data.get("new") in (RoomState.IDLE,
                                                                    RoomState.ERROR):
            manager.stop_all("left")
        elif event.name == "config-changed" and "audio" in event.data.get("sections", ()):
            detector.set_sensitivity(app.config.audio.input_sensitivity)
        if event.name == "config-changed" and "video" in event.data.get("sections", ()):
            orientation = getattr(app.media, "orientation", None)
            if orientation is not None:
                video = app.config.video
                orientation.set(mirror=video.mirror, rotate=video.rotate)
        elif event.name == "custom-message" and event.data.get("cmd") == ANNOUNCE_CMD:
            args = announcement_args(event.data.get("payload"))
            if not app.config.audio.announcements:
                log.info("announcement from %s ignored (audio.announcements = false)",
                         event.data.get("from"))
            elif args is None:
                log.warning("announcement from %s: payload needs text or url",
                            event.data.get("from"))
            else:
                task = asyncio.create_task(_announce(app, args, str(event.data.get("from"))),
                                           name="playback:announce")
                background.add(task)
                task.add_done_callback(background.discard)

    app.bus.add_listener(on_event)
    app.register("talk", _run_talk)


def announcement_args(payload: Any) -> dict[str, Any] | None:
    """The ``play`` arguments of an announcement's payload (``{"text"}`` or ``{"url"}``,
    optional ``volume``), or None when it has neither."""
    if isinstance(payload, str):
        payload = {"text": payload}
    if not isinstance(payload, dict):
        return None
    args: dict[str, Any] = {"destination": "speaker"}
    if isinstance(payload.get("url"), str):
        args["url"] = payload["url"]
    elif isinstance(payload.get("text"), str):
        args["text"] = payload["text"][:ANNOUNCE_TEXT_MAX]
    else:
        return None
    volume = payload.get("volume")
    if isinstance(volume, int) and not isinstance(volume, bool) and 0 <= volume <= 100:
        args["volume"] = volume
    return args


async def _announce(app: Host, args: dict[str, Any], sender: str) -> None:
    try:
        await app.dispatcher.dispatch("play", args, source=f"announce:{sender}")
    except ActionError as exc:
        log.warning("announcement from %s not played: %s %s", sender, exc.code, exc.message)


async def _run_talk(app: Host) -> None:
    detector = app.dispatcher.talk
    if detector is not None:
        await detector.run()
