"""The room screen subsystem (``display``): the screen ``[display]`` asks for, kept
attached to the current room session.

:class:`ScreenHost` is what the rest of the appliance reaches: the dispatcher's
``layout`` and ``pin_member`` actions, the page's status (``display`` in
``GET /api/status``) and the sim screen's picture (``GET /api/display.jpg``). The
subsystem builds a :class:`~services.display.screen.RoomScreen` from the config, makes it
the room session's remote-video consumer (with ``video.receive = "auto"`` that is what
subscribes to the members' video) and tells the session whose video is on screen.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING, Any

from drivers.common.actions import ActionError

if TYPE_CHECKING:
    from device.host import Host
    from services.display.screen import RoomScreen

log = logging.getLogger(__name__)

DISPLAY = "display"
#: The events after which the screen re-reads the room.
ROOM_EVENTS = {"room-state", "entered", "member-joined", "member-left", "member-updated",
               "talking", "hand", "controls", "kicked"}


class ScreenHost:
    """The screen as the appliance sees it; its status is merged into the page's."""

    def __init__(self) -> None:
        self.screen: RoomScreen | None = None
        self.backend = "off"
        self.reason = ""

    def __repr__(self) -> str:
        return f"<ScreenHost {self.backend} {self.screen!r}>"

    def __call__(self) -> dict[str, Any]:
        if self.screen is None:
            return {"backend": self.backend, "reason": self.reason, "tiles": []}
        return {**self.screen.status(), "reason": self.reason}

    def _screen(self) -> RoomScreen:
        if self.screen is None:
            raise ActionError("NO_DISPLAY", f"no screen is shown ({self.reason or 'off'})")
        return self.screen

    def set_layout(self, layout: str) -> dict[str, Any]:
        return {"layout": self._screen().set_layout(layout)}

    def pin(self, member_id: str | None) -> dict[str, Any]:
        screen = self._screen()
        if member_id == "local" and not screen.settings.self_view:
            raise ActionError("NO_SUCH_MEMBER", "no self-view on the screen (display.self_view)")
        screen.pin(member_id)
        return {"pinned": member_id, "focus": screen.focus}

    def offer_self_frame(self, frame: Any) -> None:
        screen = self.screen
        if screen is not None:
            screen.offer_self_frame(frame)

    def jpeg(self) -> bytes | None:
        """The sim screen's picture (blocking: run it in a thread); None for others."""
        screen = self.screen
        encode = getattr(screen.display, "jpeg", None) if screen is not None else None
        return encode() if encode is not None else None


def compose_screen(app: Host) -> None:
    """Register the ``display`` subsystem and what the page and dispatcher reach of it."""
    host = ScreenHost()
    app.extras[DISPLAY] = host  # the page's picture of the sim screen
    app.status_providers.add(DISPLAY, host)
    app.dispatcher.display = host
    media = app.media
    video = getattr(media, "video", None)
    if video is not None and hasattr(video, "add_frame_observer"):
        video.add_frame_observer(host.offer_self_frame)  # the self-view

    async def run(app: Host) -> None:
        await run_screen(app, host)

    app.register(DISPLAY, run)


async def run_screen(app: Host, host: ScreenHost) -> None:
    """Show the room until cancelled; idles when no screen is configured or found."""
    from device.settings import display
    from drivers.display import DisplayError, choose_backend, open_display

    config = app.config.display
    if not config.enabled:
        backend, reason = "off", "display.enabled = false"
    else:
        backend, reason = choose_backend(config.backend, sim=app.sim)
    host.backend, host.reason = backend, reason
    log.info("display: %s (%s)", backend, reason)
    if backend == "off":
        await asyncio.Event().wait()
    # Pillow and the compositor load only when a screen is shown (in a thread: a second
    # of CPU on a Pi would hold up the event loop)
    module = await asyncio.to_thread(importlib.import_module, "services.display.screen")
    RoomScreen = module.RoomScreen
    screen = RoomScreen(open_display(backend, config.resolution), display(app.config),
                        emit=app.bus.publish)
    attached: list[Any] = [None]

    def follow_room() -> None:
        room = app.room
        if room is attached[0]:
            return
        _detach(attached[0])
        attached[0] = room
        screen.attach(room)
        if room is not None and hasattr(room, "set_remote_video_consumer"):
            room_any: Any = room
            room_any.set_video_filter(screen.shows)
            room_any.set_remote_video_consumer(screen.on_video)

    def shown_changed() -> None:
        room = attached[0]
        if room is not None and hasattr(room, "set_video_filter"):
            room.set_video_filter(screen.shows)

    screen.on_shown_changed = shown_changed
    host.screen = screen
    drawing = asyncio.create_task(screen.run(), name="display:draw")
    try:
        async with app.bus.subscribe(names=ROOM_EVENTS, maxsize=64) as events:
            follow_room()
            pump = asyncio.create_task(_pump(events, follow_room, screen), name="display:room")
            try:
                done, _ = await asyncio.wait({drawing, pump},
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raises why it ended
            finally:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
    except DisplayError as exc:
        if config.backend != "auto":
            raise
        # auto found the pieces but no usable screen (none plugged in): say so, show nothing
        host.reason = f"auto: {exc}"
        log.warning("display: %s", exc)
        host.screen = None
        _detach(attached[0])
        attached[0] = None
        await asyncio.Event().wait()
    finally:
        host.screen = None
        _detach(attached[0])
        drawing.cancel()
        await asyncio.gather(drawing, return_exceptions=True)


def _detach(room: Any) -> None:
    if room is not None and hasattr(room, "set_remote_video_consumer"):
        room.set_remote_video_consumer(None)
        room.set_video_filter(None)


async def _pump(events: Any, follow_room: Any, screen: RoomScreen) -> None:
    async for event in events:
        follow_room()  # a config change may have rebuilt the session
        screen.room_event(event.name, event.data)
