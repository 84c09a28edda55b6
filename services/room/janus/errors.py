"""Janus error codes mapped to the room contract's errors."""

from __future__ import annotations

from services.room.api import NoSuchRoom, RoomError, RoomFull, Unauthorized, WrongPin

#: Core API: 403 unauthorized (api_secret or token), 405 plugin not allowed for the token.
_CORE = {403: Unauthorized, 405: Unauthorized}
#: Plugin codes (videoroom 4xx, audiobridge 48x, textroom 41x) for the cases that matter.
_PLUGIN = {
    426: NoSuchRoom, 433: Unauthorized, 432: RoomFull,  # videoroom
    485: NoSuchRoom, 489: Unauthorized,  # audiobridge
    417: NoSuchRoom, 419: Unauthorized,  # textroom
}


def janus_error(code: int | None, reason: str, *, plugin: bool) -> RoomError:
    """The :class:`RoomError` for a Janus error ``code`` and its ``reason`` text."""
    text = reason or "unknown error"
    lower = text.lower()
    cls = (_PLUGIN if plugin else _CORE).get(code or 0)
    if cls is Unauthorized and "pin" in lower:
        cls = WrongPin
    if cls is None:
        if "no such room" in lower:
            cls = NoSuchRoom
        elif "unauthorized" in lower:
            cls = WrongPin if "pin" in lower else Unauthorized
    message = f"Janus error {code}: {text}"
    if cls is WrongPin:
        message = f"wrong room PIN (Janus error {code}: {text})"
    elif cls is NoSuchRoom:
        message = f"no such room on the server (Janus error {code}: {text})"
    elif cls is Unauthorized:
        message = f"not authorized by the server (Janus error {code}: {text})"
    if cls is None:
        return RoomError(message, code=f"JANUS_{code}" if code else None)
    return cls(message)
