"""The one place where actions are dispatched.

Buttons, the serial line and the web page all call :meth:`Dispatcher.dispatch` with an
action name and its arguments; the result is returned to the caller and every change it
causes reaches every surface through the event bus. Arguments are validated here, once,
so every surface reports the same errors with the same codes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from drivers.base import Emit, null_emit
from drivers.errors import DeviceError, EdgeroomError
from services.room.api import RoomError, RoomSession, RoomState

log = logging.getLogger(__name__)

VOLUME_STEP = 5


class ActionError(EdgeroomError, ValueError):
    """An action was refused; ``code`` is stable (``BAD_ARGUMENT``, ``UNAVAILABLE``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MediaControl(Protocol):
    """Recording and live streaming, as the dispatcher sees them."""

    async def start_recording(self) -> dict[str, Any]: ...

    async def stop_recording(self) -> dict[str, Any]: ...

    async def start_stream(self, url: str | None = None) -> dict[str, Any]: ...

    async def stop_stream(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ActionSpec:
    name: str
    doc: str
    args: dict[str, str]  # name -> description, "?" suffix on the name = optional


ACTIONS: dict[str, ActionSpec] = {a.name: a for a in [
    ActionSpec("join", "Enter the room.", {"room?": "room number (default: config)"}),
    ActionSpec("leave", "Exit the room.", {}),
    ActionSpec("mute", "Mic mute.", {"state": "on|off|toggle"}),
    ActionSpec("ptt", "Push-to-talk: mic live only while held.", {"state": "start|stop"}),
    ActionSpec("volume", "Mic or speaker volume.",
               {"target": "mic|speaker", "value?": "0-100", "step?": "up|down"}),
    ActionSpec("speaker", "Speaker on/off.", {"state": "on|off|toggle"}),
    ActionSpec("video", "Camera on/off (off closes the camera).", {"state": "on|off|toggle"}),
    ActionSpec("deaf", "Hear nothing and mute the mic.", {"state": "on|off|toggle"}),
    ActionSpec("hand", "Raise or lower a hand.", {"state": "on|off|toggle"}),
    ActionSpec("message", "Send a text message.", {"text": "1-1000 chars", "to?": "member id"}),
    ActionSpec("custom", "Send a custom message.",
               {"cmd": "name", "payload?": "any JSON", "priority?": "high|low"}),
    ActionSpec("member_mute", "Stop playing one member locally.",
               {"id": "member id", "state": "on|off|toggle"}),
    ActionSpec("mute_all", "Stop playing every remote member locally.", {"state": "on|off"}),
    ActionSpec("moderate", "Mute a member in the room (needs room.secret).",
               {"id": "member id", "state": "on|off"}),
    ActionSpec("kick", "Remove a member from the room (needs room.secret).", {"id": "member id"}),
    ActionSpec("role", "Switch role.", {"role": "publisher|listener"}),
    ActionSpec("record", "Start or stop recording.", {"state": "start|stop"}),
    ActionSpec("stream", "Start or stop the RTMP live stream.",
               {"state": "start|stop", "url?": "rtmp URL (default: stream.rtmp_url)"}),
    ActionSpec("factory_reset", "Erase config and secrets, restart into setup.", {}),
]}


def _choice(args: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = args.get(key)
    if isinstance(value, bool) and set(allowed) >= {"on", "off"}:
        return "on" if value else "off"
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ActionError("BAD_ARGUMENT", f"{key} must be one of {'|'.join(allowed)}, "
                                          f"got {value!r}")
    return value.lower()


def _flag(args: Mapping[str, Any], current: bool, key: str = "state") -> bool:
    state = _choice(args, key, ("on", "off", "toggle"))
    return (not current) if state == "toggle" else state == "on"


def _text(args: Mapping[str, Any], key: str, limit: int) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ActionError("BAD_ARGUMENT", f"{key} must be a non-empty string")
    if len(value) > limit:
        raise ActionError("BAD_ARGUMENT", f"{key} is longer than {limit} characters")
    return value


class Dispatcher:
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
        args = dict(args or {})
        handler = getattr(self, f"_do_{name}", None)
        if name not in ACTIONS or handler is None:
            raise ActionError("UNKNOWN_ACTION", f"unknown action {name!r}")
        log.info("action %s %s from %s", name, args, source)
        try:
            result: dict[str, Any] = await handler(args)
        except ActionError as exc:
            self._emit("action-failed", {"action": name, "code": exc.code,
                                         "message": exc.message, "source": source})
            raise
        except RoomError as exc:
            self._emit("action-failed", {"action": name, "code": exc.code,
                                         "message": str(exc), "source": source})
            raise ActionError(exc.code, str(exc)) from exc
        except DeviceError as exc:
            # A camera or mic that cannot open: the caller gets the reason, not a crash.
            self._emit("action-failed", {"action": name, "code": "DEVICE_ERROR",
                                         "message": str(exc), "source": source})
            raise ActionError("DEVICE_ERROR", str(exc)) from exc
        self._emit("action", {"action": name, "args": args, "source": source,
                              "result": result})
        return result

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
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ActionError("BAD_ARGUMENT", f"room must be a positive integer, "
                                                  f"got {value!r}")
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
        role = _choice(args, "role", ("publisher", "listener"))
        await self._room().set_role(role)  # type: ignore[arg-type]
        return {"role": role}

    # -- local audio and video --------------------------------------------------------

    async def _do_mute(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        muted = _flag(args, not room.controls.mic_enabled)
        await room.set_mic(not muted)
        return {"muted": muted}

    async def _do_ptt(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        state = _choice(args, "state", ("start", "stop"))
        if state == "start" and not self.ptt_held:
            self.ptt_held = True
            await room.set_mic(True)
        elif state == "stop" and self.ptt_held:
            self.ptt_held = False
            await room.set_mic(False)
        return {"talking": self.ptt_held}

    async def _do_volume(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._room()
        target = _choice(args, "target", ("mic", "speaker"))
        current = room.controls.mic_volume if target == "mic" else room.controls.speaker_volume
        if "value" in args:
            value = args["value"]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise ActionError("BAD_ARGUMENT", f"value must be an integer 0-100, "
                                                  f"got {value!r}")
        elif "step" in args:
            step = _choice(args, "step", ("up", "down"))
            value = max(0, min(100, current + (VOLUME_STEP if step == "up" else -VOLUME_STEP)))
        else:
            raise ActionError("BAD_ARGUMENT", "give value (0-100) or step (up|down)")
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
        return {"raised": raised}

    async def _do_message(self, args: dict[str, Any]) -> dict[str, Any]:
        text = _text(args, "text", 1000)
        to = args.get("to")
        if to is not None and not isinstance(to, str):
            raise ActionError("BAD_ARGUMENT", "to must be a member id")
        room = self._in_room()
        if to is not None:
            self._known_member(room, to)
        await room.send_text(text, to)
        return {"sent": True}

    async def _do_custom(self, args: dict[str, Any]) -> dict[str, Any]:
        cmd = _text(args, "cmd", 64)
        priority = _choice(args, "priority", ("high", "low")) if "priority" in args else "high"
        await self._in_room().send_custom(cmd, args.get("payload"), priority)  # type: ignore[arg-type]
        return {"sent": True}

    def _member_id(self, args: Mapping[str, Any]) -> str:
        member_id = args.get("id")
        if isinstance(member_id, int) and not isinstance(member_id, bool):
            member_id = str(member_id)
        if not isinstance(member_id, str) or not member_id:
            raise ActionError("BAD_ARGUMENT", "id must be a member id")
        return member_id

    def _known_member(self, room: RoomSession, member_id: str) -> None:
        if member_id not in {m.id for m in room.members()}:
            raise ActionError("NO_SUCH_MEMBER", f"no member {member_id!r} in the room")

    async def _do_member_mute(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._in_room()
        member_id = self._member_id(args)
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
        member_id = self._member_id(args)
        self._known_member(room, member_id)
        muted = _choice(args, "state", ("on", "off")) == "on"
        await room.moderate(member_id, muted)
        return {"id": member_id, "muted": muted}

    async def _do_kick(self, args: dict[str, Any]) -> dict[str, Any]:
        room = self._in_room()
        member_id = self._member_id(args)
        self._known_member(room, member_id)
        await room.kick(member_id)
        return {"id": member_id}

    # -- media outputs ----------------------------------------------------------------

    async def _do_record(self, args: dict[str, Any]) -> dict[str, Any]:
        media = self._media()
        if _choice(args, "state", ("start", "stop")) == "start":
            return await media.start_recording()
        return await media.stop_recording()

    async def _do_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        media = self._media()
        if _choice(args, "state", ("start", "stop")) == "stop":
            return await media.stop_stream()
        url = args.get("url") or self._default_stream_url()
        if not isinstance(url, str) or not url.startswith(("rtmp://", "rtmps://")):
            raise ActionError("BAD_ARGUMENT", "no RTMP URL: set stream.rtmp_url or give url")
        return await media.start_stream(url)

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
