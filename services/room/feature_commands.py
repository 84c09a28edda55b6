"""The custom messages of the room features (docs/room.md, "Wire format"), and the
features' settings."""

from __future__ import annotations

from dataclasses import dataclass

CMD_META = "edgeroom.meta"  # {"scope": "room"|"member", "meta", "ts", "by"}
CMD_META_SYNC = "edgeroom.meta-sync"  # {}
CMD_META_STATE = "edgeroom.meta-state"  # whispered: {"room", "member", "signed"}
CMD_STATUS = "edgeroom.room-status"  # signed {"status", "notice"}
CMD_SPEAK_REQUEST = "edgeroom.speak-request"  # {"request", "timeout_ms"}
CMD_SPEAK_CANCEL = "edgeroom.speak-cancel"  # {"request"}
CMD_SPEAK_ANSWER = "edgeroom.speak-answer"  # signed {"id", "request", "accepted"}
CMD_SPEAK_REVOKE = "edgeroom.speak-revoke"  # signed {"id"}
CMD_CHAT_MUTE = "edgeroom.chat-mute"  # signed {"id", "muted"}
CMD_CHAT_LOCK = "edgeroom.chat-lock"  # signed {"locked"}
CMD_TEXT = "edgeroom.text"  # signed {"text"}: a moderator's message
#: Commands whose state a late joiner receives (signed, checked again by the joiner).
SIGNED_STATE = (CMD_STATUS, CMD_CHAT_MUTE, CMD_CHAT_LOCK)


@dataclass(frozen=True)
class RoomFeatureSettings:
    #: room.secret: signs moderation commands and checks the ones received
    secret: str | None = None
    #: how long a request to speak waits for an answer
    speak_timeout_s: float = 30.0
