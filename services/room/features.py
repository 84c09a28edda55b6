"""Room features carried on the TextRoom: metadata, requests to speak, status, chat moderation.

:class:`RoomFeatures` is the session's :class:`~services.room.extension.RoomExtension`.
Every command is a custom message (``{"edgeroom": 1, "cmd", "payload"}``, see
:mod:`services.room.messages`); the wire format is documented in docs/room.md.

A member that joins broadcasts ``edgeroom.meta-sync``; each member whispers back
``edgeroom.meta-state`` with what it knows (room metadata, its own member metadata, and
the signed status and chat-moderation commands it holds), so a late joiner catches up
without any member being in charge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from drivers.base import Emit, null_emit
from drivers.common.actions import ActionError
from services.room.api import RoomState
from services.room.chatmod import ChatModeration
from services.room.extension import RoomLink
from services.room.feature_commands import (
    CMD_CHAT_LOCK,
    CMD_CHAT_MUTE,
    CMD_META,
    CMD_META_STATE,
    CMD_META_SYNC,
    CMD_SPEAK_ANSWER,
    CMD_SPEAK_CANCEL,
    CMD_SPEAK_REQUEST,
    CMD_SPEAK_REVOKE,
    CMD_STATUS,
    CMD_TEXT,
    SIGNED_STATE,
    RoomFeatureSettings,
)
from services.room.messages import parse_custom
from services.room.meta import MetaBook, Stamped, apply_op, parse_stamped, valid_status
from services.room.signing import Verifier, sign
from services.room.speak import PendingRequest, SpeakRequests

log = logging.getLogger(__name__)

def _now_ms() -> int:
    return int(time.time() * 1000)


class RoomFeatures:
    def __init__(self, settings: RoomFeatureSettings, link: RoomLink,
                 emit: Emit = null_emit) -> None:
        self.settings = settings
        self.link = link
        self._emit = emit
        self.book = MetaBook()
        self.own_meta = Stamped()
        self.chat = ChatModeration()
        self.speak = SpeakRequests(self._expired)
        self.verifier = Verifier(settings.secret, link.room_number)
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: dict[str, Callable[..., None]] = {
            CMD_META: self._on_meta, CMD_META_SYNC: self._on_meta_sync,
            CMD_META_STATE: self._on_meta_state, CMD_STATUS: self._on_status,
            CMD_SPEAK_REQUEST: self._on_speak_request, CMD_SPEAK_CANCEL: self._on_speak_cancel,
            CMD_SPEAK_ANSWER: self._on_speak_answer, CMD_SPEAK_REVOKE: self._on_speak_revoke,
            CMD_CHAT_MUTE: self._on_chat_mute, CMD_CHAT_LOCK: self._on_chat_lock,
            CMD_TEXT: self._on_text,
        }

    def __repr__(self) -> str:
        return (f"<RoomFeatures moderator={self.moderator} status={self.book.status} "
                f"{self.speak!r}>")

    @property
    def moderator(self) -> bool:
        return self.settings.secret is not None

    # -- the extension hooks ----------------------------------------------------------

    def incoming(self, sender: str, text: str, to: str | None, history: str | None) -> bool:
        custom = parse_custom(text)
        if custom is None:
            return not self.chat.allows(sender, moderator=False)
        cmd, payload = custom
        handler = self._handlers.get(cmd)
        if handler is None:
            return False
        if cmd == CMD_TEXT:
            self._on_text(sender, payload, to, history)
        elif history is None:  # replayed commands are stale: state comes from meta-sync
            try:
                handler(sender, payload, to)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("room: %s from %s is malformed: %s", cmd, sender, exc)
        return True

    def opened(self) -> None:
        self.verifier.room = self.link.room_number
        self.link.post_custom(CMD_META_SYNC, {})
        if self.own_meta.ts:
            self.link.post_custom(CMD_META, {"scope": "member", **self.own_meta.wire()})

    def presence(self, member_id: str, present: bool) -> None:
        if present:
            return
        self.book.members.pop(member_id, None)
        pending = self.speak.drop_other(member_id)
        if pending is not None:
            self._answered(pending, "cancelled", None)

    def left(self) -> None:
        self.speak.clear()
        self.book.clear_remote(keep=None)
        self.chat.clear()
        self._emit("room-meta", self.book.room_view())

    async def close(self) -> None:
        self.speak.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- what the page and the status show --------------------------------------------

    def view(self) -> dict[str, Any]:
        own = self.speak.own
        return {**self.book.room_view(),
                "member_meta": {k: v.value for k, v in self.book.members.items()},
                "own_meta": self.own_meta.value,
                "moderator": self.moderator,
                "requests": self.speak.views(),
                "own_request": own.view() if own is not None else None,
                "chat": self.chat.view()}

    # -- actions ----------------------------------------------------------------------

    def _in_room(self) -> str:
        local_id = self.link.local_id
        if self.link.state not in (RoomState.IN_ROOM, RoomState.RECONNECTING) or \
                local_id is None:
            raise ActionError("NOT_IN_ROOM", "not in a room")
        return local_id

    def _secret(self) -> str:
        if self.settings.secret is None:
            raise ActionError("NO_SECRET", "this needs room.secret in the config")
        return self.settings.secret

    def _signed(self, cmd: str, payload: dict[str, Any]) -> dict[str, Any]:
        return sign(self._secret(), cmd, self.link.room_number, payload, self._in_room())

    def set_meta(self, scope: str, op: str, meta: Any = None,
                 keys: Any = None) -> dict[str, Any]:
        local_id = self._in_room()
        current = self.book.room if scope == "room" else self.own_meta
        stamped = Stamped(apply_op(current.value, op, meta, keys),
                          max(_now_ms(), current.ts + 1), local_id)
        if scope == "room":
            self.book.room = stamped
            self._emit("room-meta", self.book.room_view())
        else:
            self.own_meta = stamped
            self.book.members[local_id] = stamped
            self._emit("member-meta", {"id": local_id, "local": True, "meta": stamped.value})
        self.link.post_custom(CMD_META, {"scope": scope, **stamped.wire()})
        return {"scope": scope, "meta": stamped.value}

    def set_status(self, status: str | None, notice: str | None) -> dict[str, Any]:
        payload = {"status": status if status is not None else self.book.status,
                   "notice": notice if notice is not None else self.book.notice}
        signed = self._signed(CMD_STATUS, payload)
        self.book.take_status(signed)
        self.link.post_custom(CMD_STATUS, signed)
        self._emit("room-meta", self.book.room_view())
        return {"status": self.book.status, "notice": self.book.notice}

    def request_speak(self) -> dict[str, Any]:
        local_id = self._in_room()
        if self.link.controls.role == "publisher":
            raise ActionError("ALREADY_PUBLISHER", "this box already publishes")
        own = self.speak.own
        if own is None:
            display = next((m.display for m in self.link.members() if m.id == local_id), "")
            own = self.speak.start_own(local_id, display,
                                       int(self.settings.speak_timeout_s * 1000))
            self.link.post_custom(CMD_SPEAK_REQUEST, {"request": own.request,
                                                      "timeout_ms": own.timeout_ms})
            self._emit("publish-request", {**own.view(), "local": True})
        return {"request": own.request, "timeout_s": own.timeout_ms / 1000}

    def cancel_speak(self) -> dict[str, Any]:
        self._in_room()
        own = self.speak.cancel_own()
        if own is not None:
            self.link.post_custom(CMD_SPEAK_CANCEL, {"request": own.request})
            self._answered(own, "cancelled", None, local=True)
        return {"cancelled": own is not None}

    def answer_speak(self, member_id: str, accept: bool) -> dict[str, Any]:
        self._secret()
        pending = self.speak.others.get(member_id)
        if pending is None:
            raise ActionError("NO_SUCH_REQUEST", f"{member_id!r} has no request waiting")
        signed = self._signed(CMD_SPEAK_ANSWER, {"id": member_id, "request": pending.request,
                                                 "accepted": accept})
        self.speak.drop_other(member_id)
        self.link.post_custom(CMD_SPEAK_ANSWER, signed)
        self._answered(pending, "accepted" if accept else "rejected", signed["by"])
        return {"id": member_id, "accepted": accept}

    def revoke_speak(self, member_id: str) -> dict[str, Any]:
        signed = self._signed(CMD_SPEAK_REVOKE, {"id": member_id})
        self.link.post_custom(CMD_SPEAK_REVOKE, signed)
        self._emit("publish-answer", {"id": member_id, "local": False, "request": None,
                                      "answer": "revoked", "by": signed["by"]})
        return {"id": member_id}

    def chat_mute(self, member_id: str, muted: bool) -> dict[str, Any]:
        signed = self._signed(CMD_CHAT_MUTE, {"id": member_id, "muted": muted})
        self._on_chat_mute(signed["by"], signed, None, live=False)
        self.link.post_custom(CMD_CHAT_MUTE, signed)
        return {"id": member_id, "muted": muted}

    def chat_lock(self, locked: bool) -> dict[str, Any]:
        signed = self._signed(CMD_CHAT_LOCK, {"locked": locked})
        self._on_chat_lock(signed["by"], signed, None, live=False)
        self.link.post_custom(CMD_CHAT_LOCK, signed)
        return {"locked": locked}

    def outgoing_text(self, text: str, to: str | None) -> bool:
        """Before a text message goes out: True if it was sent here (signed, while the
        room is locked); :class:`ActionError` if a moderator muted this box's messages.
        (A box knows of a lock or a mute only with room.secret, so it signs.)"""
        local_id = self._in_room()
        if self.chat.muted(local_id):
            raise ActionError("CHAT_MUTED", "a moderator muted this box's messages")
        if not self.chat.locked:
            return False
        self.link.post_custom(CMD_TEXT, self._signed(CMD_TEXT, {"text": text}), to)
        return True

    # -- incoming commands ------------------------------------------------------------

    def _display(self, member_id: str) -> str:
        return next((m.display for m in self.link.members() if m.id == member_id), member_id)

    def _refused(self, cmd: str, sender: str, payload: Any) -> bool:
        reason = self.verifier.live(cmd, payload, sender)
        if reason is not None:
            log.warning("room: ignored %s from %s: %s", cmd, sender, reason)
            self._emit("moderation-refused", {"cmd": cmd, "from": sender, "reason": reason})
        return reason is not None

    def _on_meta(self, sender: str, payload: Any, to: str | None) -> None:
        if not isinstance(payload, dict):
            return
        if payload.get("scope") == "room":
            if self.book.take_room(payload):
                self._emit("room-meta", self.book.room_view())
        elif payload.get("scope") == "member" and payload.get("by") == sender:
            if self.book.take_member(sender, payload):
                self._emit("member-meta", {"id": sender, "local": False,
                                           "meta": self.book.members[sender].value})

    def _on_meta_sync(self, sender: str, payload: Any, to: str | None) -> None:
        answer: dict[str, Any] = {
            "room": self.book.room.wire() if self.book.room.ts else None,
            "member": self.own_meta.wire() if self.own_meta.ts else None,
            "signed": [{"cmd": cmd, "payload": p} for cmd, p in self._signed_state()]}
        if answer["room"] or answer["member"] or answer["signed"]:
            self.link.post_custom(CMD_META_STATE, answer, sender)

    def _signed_state(self) -> list[tuple[str, dict[str, Any]]]:
        state = self.chat.signed_state()
        if self.book.status_cmd is not None:
            state.insert(0, (CMD_STATUS, self.book.status_cmd))
        return state

    def _on_meta_state(self, sender: str, payload: Any, to: str | None) -> None:
        if not isinstance(payload, dict):
            return
        if payload.get("room") is not None:
            self._on_meta(sender, {"scope": "room", **payload["room"]}, None)
        member = parse_stamped(payload.get("member"))
        if member is not None and member.by == sender:
            self._on_meta(sender, {"scope": "member", **member.wire()}, None)
        for item in payload.get("signed") or []:
            cmd, signed = item.get("cmd"), item.get("payload")
            if cmd in SIGNED_STATE and self.verifier.authentic(cmd, signed):
                self._handlers[cmd](sender, signed, None, live=False)

    def _on_status(self, sender: str, payload: Any, to: str | None, live: bool = True) -> None:
        if live and self._refused(CMD_STATUS, sender, payload):
            return
        if valid_status(payload) and self.book.take_status(payload):
            self._emit("room-meta", self.book.room_view())

    def _on_speak_request(self, sender: str, payload: Any, to: str | None) -> None:
        request, timeout_ms = payload.get("request"), payload.get("timeout_ms")
        if not isinstance(request, str) or isinstance(timeout_ms, bool) or \
                not isinstance(timeout_ms, int):
            return
        pending = self.speak.add_other(sender, request, self._display(sender), timeout_ms)
        self._emit("publish-request", {**pending.view(), "local": False})

    def _on_speak_cancel(self, sender: str, payload: Any, to: str | None) -> None:
        pending = self.speak.drop_other(sender, payload.get("request"))
        if pending is not None:
            self._answered(pending, "cancelled", None)

    def _on_speak_answer(self, sender: str, payload: Any, to: str | None) -> None:
        if self._refused(CMD_SPEAK_ANSWER, sender, payload):
            return
        answer = "accepted" if payload.get("accepted") is True else "rejected"
        if payload.get("id") == self.link.local_id:
            own = self.speak.take_own_answer(payload.get("request"))
            if own is None:
                log.info("room: an answer to a request no longer waiting (%s)", answer)
                return
            if answer == "accepted":
                self._spawn(self._switch_role("publisher"))
            self._answered(own, answer, sender, local=True)
            return
        pending = self.speak.drop_other(str(payload.get("id")), payload.get("request"))
        if pending is not None:
            self._answered(pending, answer, sender)

    def _on_speak_revoke(self, sender: str, payload: Any, to: str | None) -> None:
        if self._refused(CMD_SPEAK_REVOKE, sender, payload):
            return
        local = payload.get("id") == self.link.local_id
        if local:
            self._spawn(self._switch_role("listener"))
        self._emit("publish-answer", {"id": payload.get("id"), "local": local,
                                      "request": None, "answer": "revoked", "by": sender})

    def _on_chat_mute(self, sender: str, payload: Any, to: str | None,
                      live: bool = True) -> None:
        if live and self._refused(CMD_CHAT_MUTE, sender, payload):
            return
        if self.chat.take_mute(payload):
            self._emit("chat-moderation", {"kind": "mute", "id": payload["id"],
                                           "muted": payload["muted"], "by": payload["by"],
                                           "local": payload["id"] == self.link.local_id})

    def _on_chat_lock(self, sender: str, payload: Any, to: str | None,
                      live: bool = True) -> None:
        if live and self._refused(CMD_CHAT_LOCK, sender, payload):
            return
        if self.chat.take_lock(payload):
            self._emit("chat-moderation", {"kind": "lock", "locked": payload["locked"],
                                           "by": payload["by"]})

    def _on_text(self, sender: str, payload: Any, to: str | None,
                 history: str | None = None) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            return
        ok = (self.verifier.authentic(CMD_TEXT, payload) if history is not None
              else not self._refused(CMD_TEXT, sender, payload))
        if not ok:
            return
        event = {"from": sender, "display": self._display(sender), "text": payload["text"],
                 "to": to, "moderator": True}
        if history is not None:
            event.update(history=True, date=history)
        self._emit("message", event)

    # -- helpers ----------------------------------------------------------------------

    def _expired(self, pending: PendingRequest) -> None:
        self._answered(pending, "timeout", None,
                       local=pending.member_id == self.link.local_id)

    def _answered(self, pending: PendingRequest, answer: str, by: str | None,
                  local: bool = False) -> None:
        self._emit("publish-answer", {"id": pending.member_id, "local": local,
                                      "request": pending.request, "answer": answer, "by": by})
        if local and self.link.controls.hand_raised:
            self._spawn(self.link.raise_hand(False))  # the request it raised is over

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="room:role-switch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _switch_role(self, role: str) -> None:
        try:
            await self.link.set_role(role)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("room: switching to %s failed: %s", role, exc)
            self._emit("room-warning", {"code": "ROLE_SWITCH_FAILED",
                                        "message": f"switching to {role} failed: {exc}"})
