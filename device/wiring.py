"""Which subsystems the appliance runs, built from its config.

This is the only module that knows every service; each service exposes one coroutine
that runs until cancelled, and this module registers it under its subsystem name
(the names config keys use in ``restart=``).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from drivers.common.malloc import freeze_imported

if TYPE_CHECKING:
    from device.host import Host

log = logging.getLogger(__name__)

#: How long stopping the room subsystem waits for the session to leave a room on the
#: local Janus before stopping that Janus.
ROOM_LEAVE_TIMEOUT = 1.0


#: The modules :func:`compose` and the subsystems import. Importing them takes a second of
#: CPU on a Pi: :func:`import_services` does it in a thread, so it does not hold up the
#: event loop. aiortc and PyAV are not among them: they load when first used (the room's
#: on the first join, services/room/lazy_media.py, or at start when the box joins at
#: once), so an idle box does not hold them.
SERVICE_MODULES = ("services.web", "services.web.snapshot", "services.web.preview",
                   "services.room", "services.room.session", "services.room.local_sfu",
                   "services.room.janus.jcfg", "services.audio",
                   "device.links",
                   "services.media.service", "services.serial_control.server",
                   "device.controls", "device.screen", "drivers.display",
                   "drivers.inventory", "drivers.audio", "drivers.camera")


def import_services(room_media: bool = False) -> None:
    """Import what the subsystems use (blocking: run it in a thread); with ``room_media``
    (a box that joins at once) the room's aiortc and PyAV modules too, in the same go."""
    for name in SERVICE_MODULES:
        importlib.import_module(name)
    if room_media:
        from services.room.lazy_media import import_room_media

        import_room_media()  # and freezes what the imports made
    else:
        freeze_imported()  # out of later full collections (drivers/common/malloc.py)


def compose(app: Host) -> None:
    """Register the subsystems ``app.config`` asks for."""
    from services.web import run_web

    app.register("web", run_web)  # the config page and its API, always on
    _compose_media(app)  # before the room: the room takes its camera and mic from it
    _compose_live_media(app)  # before the room too: it mixes the playbacks
    _compose_room(app)
    _compose_links(app)
    from device.screen import compose_screen

    compose_screen(app)  # the room on a screen (HDMI), when there is one
    from device.guests import compose_guests

    compose_guests(app)  # guests in the room from the page (guest links)
    _compose_controls(app)
    app.register("devices", _run_device_watcher)
    from device.probes import add_probes

    add_probes(app)


async def _run_device_watcher(app: Host) -> None:
    """Keep the device inventory shown on the page current as devices come and go."""
    import asyncio

    from device import settings
    from drivers.inventory import DeviceWatcher, list_devices

    shown = app.status_providers.get("devices")  # kept across a restart until refreshed
    latest: dict[str, Any] = shown() if shown is not None else {}
    app.status_providers.add("devices", lambda: latest)

    async def refresh() -> None:
        nonlocal latest
        latest = await asyncio.to_thread(list_devices, settings.inventory(app.config),
                                         sim=app.sim)

    await refresh()
    async with app.bus.subscribe(names={"devices-changed"}, maxsize=4) as changes:
        async with DeviceWatcher(app.bus.publish):
            async for _ in changes:
                await refresh()


def _compose_room(app: Host) -> None:
    """The room session (built now, so every surface can reach it) and its subsystem."""
    app.room = _new_session(app)
    app.dispatcher.room = app.room
    _attach_features(app, app.room)
    app.register("room", _run_room)


def _new_session(app: Host) -> Any:
    """A room session built from the current config (remembered as ``built_from``)."""
    from device import settings
    from services.room import create_session

    config = app.config
    session = create_session(settings.room_session(config), app.state_dir, sim=app.sim,
                             emit=app.bus.publish, **_media_devices(app))
    session.built_from = config
    return session


def _compose_links(app: Host) -> None:
    """Links to rooms on other servers (built now, so the actions can reach them)."""
    from device.links import LinkControl, RoomMessenger

    app.dispatcher.links = LinkControl(app.config, app.bus.publish, RoomMessenger(app))
    app.register("links", _run_links)  # idles when there is no [[link]]


async def _run_links(app: Host) -> None:
    from device.links import run_links

    await run_links(app)


def _attach_features(app: Host, session: Any) -> None:
    """Metadata, requests to speak, status and chat moderation on the session's
    message channel (each session gets its own)."""
    from device.settings import room_features
    from services.room.features import RoomFeatures

    features = RoomFeatures(room_features(app.config), session, emit=app.bus.publish)
    session.extension = features
    app.dispatcher.features = features
    app.status_providers.add("room_features", features.view)


async def _run_room(app: Host) -> None:
    """Run the local SFU when configured and join when ``room.auto_join``; on a restart
    (config change) the session is rebuilt from the current config."""
    import asyncio

    from device import settings
    from services.room import create_local_sfu
    from services.room.api import RoomError

    session = app.room
    if session is None or getattr(session, "built_from", None) is not app.config:
        if session is not None:
            await session.close()
        if app.dispatcher.features is not None:
            await app.dispatcher.features.close()
        session = _new_session(app)
        app.room = session
        app.dispatcher.room = session
        _attach_features(app, session)
    sfu_task: asyncio.Task[None] | None = None
    try:
        if app.config.room.server == "local":
            sfu = create_local_sfu(settings.local_sfu(app.config), app.state_dir,
                                   emit=app.bus.publish)
            app.status_providers.add("sfu", lambda: {"sfu": {"url": sfu.url, "pid": sfu.pid,
                                                              "starts": sfu.starts}})
            sfu_task = asyncio.create_task(sfu.run(), name="room:local-sfu")
            ready = asyncio.create_task(sfu.wait_ready(20.0), name="room:sfu-ready")
            done, _ = await asyncio.wait({sfu_task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if sfu_task in done:
                ready.cancel()
                await sfu_task  # raises why it could not run
            await ready
        if app.config.room.auto_join:
            try:
                await session.join()
            except RoomError as exc:
                log.error("room: %s", exc)  # reported as room-error; state is error
        if sfu_task is not None:
            await sfu_task
        else:
            await asyncio.Event().wait()
    finally:
        try:
            if sfu_task is None:
                await session.leave()
            else:
                # Bounded: a leave stuck behind a join in progress must not keep the local
                # Janus (which takes the room down with it anyway) running past the
                # supervisor's stop timeout.
                await asyncio.wait_for(session.leave(), ROOM_LEAVE_TIMEOUT)
        except TimeoutError:
            log.warning("room: leaving took over %.1f s; going on", ROOM_LEAVE_TIMEOUT)
        finally:
            if sfu_task is not None:
                sfu_task.cancel()
                await asyncio.gather(sfu_task, return_exceptions=True)


def _compose_media(app: Host) -> None:
    """Recording, RTMP streaming and the shared encoders (also without a room).

    Registered as ``video`` so that a change of a ``video.*`` key restarts it.
    """
    from device import settings
    from services.media.orient import Orientation, OrientationControl
    from services.media.service import MediaService

    video = app.config.video
    orientation = OrientationControl(Orientation(mirror=video.mirror, rotate=video.rotate),
                                     emit=app.bus.publish)
    media = MediaService.from_settings(lambda: settings.media(app.config), app.state_dir,
                                       sim=app.sim, emit=app.bus.publish,
                                       orientation=orientation)
    app.media = media
    app.dispatcher.media = media  # recording and streaming actions
    app.status_providers.add("media", media.status)
    app.status_providers.add("camera_orientation", lambda: orientation.current.to_dict())
    if media.mic is not None:
        app.extras["mic_users"] = media.mic  # the page's level meter holds it open
    # The page's camera preview: the latest frame the shared encoder took from the camera
    # (the camera runs only while the room, a recording or a stream uses it).
    from services.web.snapshot import JpegSnapshot

    snapshot = JpegSnapshot()
    media.video.add_frame_observer(
        lambda frame: snapshot.offer(frame) if frame is not None else snapshot.clear())
    app.extras["snapshot"] = snapshot
    # ... and live over WebRTC: each open preview is one more subscriber of the same encoder
    from services.web.preview import PREVIEW, CameraPreview

    app.extras[PREVIEW] = CameraPreview(lambda: media.video_track("preview"),
                                        preferred=lambda: media.video.active_codecs)
    app.register("video", _run_media)


async def _run_media(app: Host) -> None:
    from services.media.service import MediaService

    media = app.media
    if isinstance(media, MediaService):
        await media.run()


def _media_devices(app: Host) -> dict[str, Any]:
    """The room's mic and camera track, shared with recording and streaming: one mic
    reader and one camera encoder (one encode per codec in use) whatever is on."""
    from services.media.service import MediaService

    media = app.media
    playbacks = {"playbacks": app.dispatcher.playbacks} if app.dispatcher.playbacks else {}
    if not isinstance(media, MediaService) or media.mic is None:
        return playbacks
    devices: dict[str, Any] = {"mic": media.mic_for_room(), **playbacks}
    if app.config.video.enabled and app.config.room.backend == "videoroom":
        devices["video_track_factory"] = media.video_track
    return devices


def _compose_live_media(app: Host) -> None:
    """Playbacks, announcements, the local talking detector (device/live_media.py) and
    devices switched live (device/live_devices.py)."""
    from device import live_devices, live_media

    live_media.compose(app)
    live_devices.compose(app)


def _compose_controls(app: Host) -> None:
    """GPIO buttons/LEDs and the serial control line (each idles when not configured)."""
    from device import settings
    from device.controls import SimButtons, run_gpio
    from services.serial_control.server import run_serial_control

    if app.sim:
        app.extras.setdefault("buttons", SimButtons())
    app.register("gpio", run_gpio)
    # the settings as the config is when the subsystem (re)starts
    app.register("serial", lambda host: run_serial_control(
        host, settings.serial_control(host.config)))
