"""The dispatcher's actions for the room features on the message channel.

Metadata, requests to speak, the room status and notice, and chat moderation
(:mod:`services.room.features`); mixed into :class:`device.actions.Dispatcher`, which
validates the arguments against their declarations first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers.common.actions import ActionError

if TYPE_CHECKING:
    from services.room.features import RoomFeatures

#: What "-" as a notice means: no notice.
CLEAR_NOTICE = "-"


class RoomFeatureActions:
    features: RoomFeatures | None = None

    def _features(self) -> RoomFeatures:
        if self.features is None:
            raise ActionError("UNAVAILABLE", "the room client is not running")
        return self.features

    async def _do_meta(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._features().set_meta(args["scope"], args["op"], args.get("meta"),
                                         args.get("keys"))

    async def _do_speak(self, args: dict[str, Any]) -> dict[str, Any]:
        features = self._features()
        if args["state"] == "request":
            return features.request_speak()
        return features.cancel_speak()

    async def _do_speak_answer(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._features().answer_speak(args["id"], args["answer"] == "accept")

    async def _do_speak_revoke(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._features().revoke_speak(args["id"])

    async def _do_room_status(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._features().set_status(args["status"], None)

    async def _do_room_notice(self, args: dict[str, Any]) -> dict[str, Any]:
        notice = args["notice"].strip()
        return self._features().set_status(None, "" if notice == CLEAR_NOTICE else notice)

    async def _do_chat_mute(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._features().chat_mute(args["id"], args["state"] == "on")

    async def _do_chat_lock(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._features().chat_lock(args["state"] == "on")

    def _hand_requests_speak(self, raised: bool, role: str) -> dict[str, Any] | None:
        """On a listener, raising the hand also asks to speak and lowering it withdraws
        the request (when the room features run)."""
        features = self.features
        if role != "listener" or features is None:
            return None
        try:
            if raised:
                return features.request_speak()
            return features.cancel_speak() if features.speak.own is not None else None
        except ActionError:
            return None
