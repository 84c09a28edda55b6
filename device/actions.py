"""The one place where actions are dispatched.

Buttons, the serial line and the web page all call :meth:`Dispatcher.dispatch` with an
action name and its arguments; the result is returned to the caller and every change it
causes reaches every surface through the event bus. Arguments are validated here, once,
so every surface reports the same errors with the same codes; what each action takes is
declared once, in :mod:`drivers.common.actions`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from device.link_actions import LinkActions
from device.live_actions import DeviceActions, LiveMediaActions
from device.room_actions import RoomFeatureActions
from drivers.base import Emit, null_emit
from drivers.common.actions import ACTIONS, ActionError, ActionSpec
from drivers.errors import DeviceError, EdgeroomError
from services.room.api import RoomError, RoomSession, RoomState

__all__ = ["ACTIONS", "ActionError", "ActionSpec", "Dispatcher", "MediaControl"]

log = logging.getLogger(__name__)

VOLUME_STEP = 5


class MediaControl(Protocol):
    """Recording and live streaming, as the dispatcher sees them."""

    async def start_recording(self) -> dict[str, Any]: ...

    async def stop_recording(self) -> dict[str, Any]: ...

    async def start_stream(self, url: str | None = None) -> dict[str, Any]: ...

    async def stop_stream(self) -> dict[str, Any]: ...


class DisplayControl(Protocol):
    """The room screen, as the dispatcher sees it."""

    def set_layout(self, layout: str) -> dict[str, Any]: ...

    def pin(self, member_id: str | None) -> dict[str, Any]: ...


#: Actions whose failures come from the media pipeline (encoders, muxers, outputs).
MEDIA_ACTIONS = ("record", "stream")


def action_error(name: str, exc: Exception) -> ActionError | None:
    """What a failure of action ``name`` is, as an action error with a stable code; None
    for an unexpected error outside the media pipeline (a bug: it propagates)."""
    if isinstance(exc, ActionError):
        return exc
    if isinstance(exc, DeviceError):
        # A camera or mic that cannot open: the caller gets the reason, not a crash.
        return ActionError("DEVICE_ERROR", str(exc))
    code = getattr(exc, "code", None)
    if isinstance(exc, EdgeroomError) and isinstance(code, str):
        return ActionError(code, str(exc))  # RoomError, MuxError, EncoderError, ...
    if name in MEDIA_ACTIONS:
        if isinstance(exc, OSError):
            return ActionError("OUTPUT_ERROR", f"{name}: {exc}")
        log.error("%s failed", name, exc_info=exc)
        return ActionError("MEDIA_ERROR", f"{name} failed: {type(exc).__name__}: {exc}")
    return None


def _flag(args: Mapping[str, Any], current: bool, key: str = "state") -> bool:
    state = args[key]
    return (not current) if state == "toggle" else state == "on"


class Dispatcher(RoomFeatureActions, LiveMediaActions, DeviceActions, LinkActions):
    def __init__(
        self,
        room: RoomSession | None,
        media: MediaControl | None = None,
        emit: Emit = null_emit,
        factory_reset: Callable[[], Awaitable[None]] | None = None,
        default_stream_url: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.room = room
        self.media = media
        self.display: DisplayControl | None = None
        self._emit = emit
        self._factory_reset = factory_reset
        self._default_stream_url = default_stream_url
        self._join_task: asyncio.Task[None] | None = None
        self.ptt_held = False

    def __repr__(self) -> str:
        return f"<Dispatcher room={self.room!r}>"

    async def dispatch(self, name: str, args: Mapping[str, Any] | None = None,
                       source: str = "api") -> dict[str, Any]:
        """Run one action; returns its result or raises :class:`ActionError`."""
        handler = getattr(self, f"_do_{name}", None)
        if name not in ACTIONS or handler is None:
            raise ActionError("UNKNOWN_ACTION", f"unknown action {name!r:.40}")
        try:
            args = ACTIONS[name].validate(args or {})
        except ActionError as exc:
            self._failed(name, exc, source)
            raise
        log.info("action %s %s from %s", name, args, source)
        try:
            result: dict[str, Any] = await handler(args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = action_error(name, exc)
            if error is None:
                raise
            self._failed(name, error, source)
            if error is exc:
                raise
            raise error from exc
        self._emit("action", {"action": name, "args": args, "source": source,
                              "result": result})
        return result

    def _failed(self, name: str, exc: ActionError, source: str) -> None:
        self._emit("action-failed", {"action": name, "code": exc.code,
                                     "message": exc.message, "source": source})

    # -- helpers ----------------------------------------------------------------------

    def _room(self) -> RoomSession:
        if self.room is None:
            raise ActionError("UNAVAILABLE", "the room client is not running")
        return self.room

    def _media(self) -> MediaControl:
        if self.media is None:
            raise ActionError("UNAVAILABLE", "recording and streaming are not available")
        return self.media

    def _in_room(self) -> RoomSession:
        room = self._room()
        if room.state not in (RoomState.IN_ROOM, RoomState.RECONNECTING):
            raise ActionError("NOT_IN_ROOM", "not in a room")
        return room

    # -- room -------------------------------------------------------------------------

    async def _do_join(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        if "room" in args:
            value = args["room"]
            set_room = getattr(room, "set_room", None)
            if set_room is None:
                raise ActionError("UNAVAILABLE", "this room backend cannot change rooms")
            await set_room(value)
        if self._join_task is not None and not self._join_task.done():
            return {"state": str(room.state)}
        self._join_task = asyncio.create_task(self._join(room), name="action:join")
        return {"state": "joining"}

    async def _join(self, room: RoomSession) -> None:
        try:
            await room.join()
        except asyncio.CancelledError:
            raise
        except RoomError as exc:
            log.warning("join failed: %s", exc)  # the session has published room-error
        except Exception:
            log.exception("join failed")

    async def _do_leave(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        if self._join_task is not None and not self._join_task.done():
            self._join_task.cancel()
            await asyncio.gather(self._join_task, return_exceptions=True)
        await room.leave()
        return {"state": str(room.state)}

    async def _do_role(self, args: dict[str, Any]) -> dict[str, Any]:
        role = args["role"]
        await self._room().set_role(role)
        return {"role": role}

    # -- local audio and video --------------------------------------------------------

    async def _do_mute(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        muted = _flag(args, not room.controls.mic_enabled)
        await room.set_mic(not muted)
        return {"muted": muted}

    async def _do_ptt(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        state = args["state"]
        if state == "start" and not self.ptt_held:
            self.ptt_held = True
            await room.set_mic(True)
        elif state == "stop" and self.ptt_held:
            self.ptt_held = False
            await room.set_mic(False)
        return {"talking": self.ptt_held}

    async def _do_volume(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        target = args["target"]
        current = room.controls.mic_volume if target == "mic" else room.controls.speaker_volume
        if "value" in args:
            value = args["value"]
        else:  # exactly one of value and step: checked against the declaration
            step = VOLUME_STEP if args["step"] == "up" else -VOLUME_STEP
            value = max(0, min(100, current + step))
        if target == "mic":
            await room.set_mic_volume(value)
        else:
            await room.set_speaker_volume(value)
        return {"target": target, "value": value}

    async def _do_speaker(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        enabled = _flag(args, room.controls.speaker_enabled)
        await room.set_speaker(enabled)
        return {"enabled": enabled}

    async def _do_video(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        enabled = _flag(args, room.controls.video_enabled)
        await room.set_video(enabled)
        return {"enabled": enabled}

    async def _do_deaf(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        deaf = _flag(args, room.controls.deaf)
        await room.set_deaf(deaf)
        return {"deaf": deaf}

    # -- the room's members and messages ----------------------------------------------

    async def _do_hand(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._in_room()
        raised = _flag(args, room.controls.hand_raised)
        await room.raise_hand(raised)
        speak = self._hand_requests_speak(raised, room.controls.role)
        return {"raised": raised, **({"speak": speak} if speak else {})}

    async def _do_message(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._in_room()
        to = args.get("to")
        if to is not None:
            self._known_member(room, to)
        if self.features is not None and self.features.outgoing_text(args["text"], to):
            return {"sent": True, "signed": True}
        await room.send_text(args["text"], to)
        return {"sent": True}

    async def _do_custom(self, args: dict[str, Any]) -> dict[str, Any]:
        cmd = args["cmd"]
        priority = args.get("priority", "high")
        await self._in_room().send_custom(cmd, args.get("payload"), priority)
        return {"sent": True}

    def _known_member(self, room: RoomSession, member_id: str) -> None:
        if member_id not in {m.id for m in room.members()}:
            raise ActionError("NO_SUCH_MEMBER", f"no member {member_id!r} in the room")

    async def _do_member_mute(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._in_room()
        member_id = args["id"]
        self._known_member(room, member_id)
        muted = _flag(args, member_id in room.controls.muted_members)
        await room.mute_member(member_id, muted)
        return {"id": member_id, "muted": muted}

    async def _do_mute_all(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        muted = _flag(args, room.controls.mute_all)
        await room.mute_all(muted)
        return {"muted": muted}

    async def _do_moderate(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._in_room()
        member_id = args["id"]
        self._known_member(room, member_id)
        muted = args["state"] == "on"
        await room.moderate(member_id, muted)
        return {"id": member_id, "muted": muted}

    async def _do_kick(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._in_room()
        member_id = args["id"]
        self._known_member(room, member_id)
        await room.kick(member_id)
        return {"id": member_id}

    # -- media outputs ----------------------------------------------------------------

    async def _do_record(self, args: dict[str, Any]) -> dict[str, Any]:
        media = self._media()
        if args["state"] == "start":
            return await media.start_recording()
        return await media.stop_recording()

    async def _do_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        media = self._media()
        if args["state"] == "stop":
            if "url" in args:
                raise ActionError("BAD_ARGUMENT", "stream: url goes with state start only")
            return await media.stop_stream()
        url = args.get("url") or self._default_stream_url()
        if not isinstance(url, str) or not url.startswith(("rtmp://", "rtmps://")):
            raise ActionError("BAD_ARGUMENT", "no RTMP URL: set stream.rtmp_url or give url")
        return await media.start_stream(url)

    # -- the screen -------------------------------------------------------------------

    def _display(self) -> DisplayControl:
        if self.display is None:
            raise ActionError("NO_DISPLAY", "no screen is shown (see [display])")
        return self.display

    async def _do_layout(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._display().set_layout(args["layout"])

    async def _do_pin_member(self, args: dict[str, Any]) -> dict[str, Any]:
        display = self._display()
        member_id = args.get("id")
        if member_id is not None and member_id != "local":
            self._known_member(self._in_room(), member_id)
        return display.pin(member_id)

    # -- the box ----------------------------------------------------------------------

    async def _do_factory_reset(self, args: dict[str, Any]) -> dict[str, Any]:
        if self._factory_reset is None:
            raise ActionError("UNAVAILABLE", "factory reset is not available")
        await self._factory_reset()
        return {"reset": True}

    async def close(self) -> None:
        if self._join_task is not None:
            self._join_task.cancel()
            await asyncio.gather(self._join_task, return_exceptions=True)
        await self.close_links()
