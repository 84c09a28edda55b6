"""The dispatcher's actions of playbacks, the input sensitivity, devices switched live
and the camera's orientation (:class:`device.actions.Dispatcher` inherits them).

The services behind them are built by :mod:`device.live_media` and
:mod:`device.live_devices`, which set them on the dispatcher.
"""

from __future__ import annotations

from typing import Any, Protocol

from drivers.common.actions import ActionError
from services.audio.talk import LocalTalkDetector
from services.playback.manager import PlaybackManager
from services.room.api import RoomState


class Switcher(Protocol):
    """What switches devices live (:class:`device.live_devices.DeviceSwitcher`)."""

    async def switch(self, kind: str, device_id: str,
                     reason: str = "chosen") -> dict[str, Any]: ...


class LiveMediaActions:
    """The dispatcher's playback and sensitivity actions (a mixin of ``Dispatcher``)."""

    playbacks: PlaybackManager | None = None
    talk: LocalTalkDetector | None = None

    def _playbacks(self) -> PlaybackManager:
        if self.playbacks is None:
            raise ActionError("UNAVAILABLE", "playbacks are not available")
        return self.playbacks

    async def _do_play(self, args: dict[str, Any]) -> dict[str, Any]:
        room = getattr(self, "room", None)
        if room is None or room.state not in (RoomState.IN_ROOM, RoomState.RECONNECTING):
            raise ActionError("NOT_IN_ROOM", "play: not in a room")
        destination = args.get("destination", "room")
        if destination in ("room", "both") and room.controls.role != "publisher":
            raise ActionError("NOT_PUBLISHING",
                              "play: a listener sends nothing to the room; play on the speaker")
        return await self._playbacks().play(
            file=args.get("file"), url=args.get("url"), text=args.get("text"),
            destination=destination, volume=args.get("volume", 100), voice=args.get("voice"))

    async def _do_playback(self, args: dict[str, Any]) -> dict[str, Any]:
        op = args.get("op", "volume")  # exactly one of op and volume: declared
        return await self._playbacks().control(args["id"], op, args.get("volume"))

    async def _do_sensitivity(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.talk is None:
            raise ActionError("UNAVAILABLE", "the talking detector is not running")
        return dict(self.talk.set_sensitivity(args["value"]))


class DeviceActions:
    """The dispatcher's ``device`` and ``camera`` actions (a mixin of ``Dispatcher``)."""

    devices: Switcher | None = None

    async def _do_camera(self, args: dict[str, Any]) -> dict[str, Any]:
        orientation = getattr(getattr(self, "media", None), "orientation", None)
        if orientation is None:
            raise ActionError("NO_DEVICE", "this box has no camera to turn")
        mirror = args.get("mirror")
        flag = None if mirror is None else (not orientation.current.mirror
                                            if mirror == "toggle" else mirror == "on")
        rotate = int(args["rotate"]) if "rotate" in args else None
        return dict(orientation.set(mirror=flag, rotate=rotate).to_dict())

    async def _do_device(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.devices is None:
            raise ActionError("UNAVAILABLE", "devices cannot be switched now")
        return await self.devices.switch(args["kind"], args["id"])
