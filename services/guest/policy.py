"""What a guest's browser may say to the box's Janus, through the page's proxy.

The page's room client speaks the Janus WebSocket API, but never to Janus directly: every
message goes through :class:`GuestPolicy`, which lets through exactly what a member of
the box's one room needs and refuses the rest (creating, editing or destroying rooms,
kicking, moderating, recording, forwarding, other rooms, other plugins). It adds what
the box knows and the guest must not: the API secret, the token and the room PIN.

Replies from Janus pass back unchanged; :meth:`GuestPolicy.reply` watches them only to
learn which plugin each handle the guest attached belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drivers.errors import EdgeroomError

VIDEOROOM = "janus.plugin.videoroom"
AUDIOBRIDGE = "janus.plugin.audiobridge"
TEXTROOM = "janus.plugin.textroom"

#: Per plugin, the requests of a room member (in a "message" body).
MEMBER_REQUESTS: dict[str, frozenset[str]] = {
    VIDEOROOM: frozenset({"join", "joinandconfigure", "configure", "publish", "unpublish",
                          "start", "pause", "update", "switch", "leave", "subscribe",
                          "unsubscribe"}),
    AUDIOBRIDGE: frozenset({"join", "configure", "leave", "hangup"}),
    TEXTROOM: frozenset({"setup", "ack"}),
}
#: Session-level verbs a member uses; "message" bodies are checked per plugin.
VERBS = frozenset({"create", "attach", "message", "trickle", "keepalive", "detach",
                   "hangup", "destroy"})
#: Body keys a guest never sets (they would grant more than membership).
FORBIDDEN_KEYS = frozenset({"secret", "admin_key", "new_secret", "permanent", "allowed",
                            "record", "filename", "rec_dir", "new_pin"})
MAX_HANDLES = 12


class PolicyError(EdgeroomError, PermissionError):
    """A message the guest may not send (the reason goes back to the page)."""


@dataclass
class GuestPolicy:
    """The rules for one guest connection to the room ``room``."""

    room: int | str
    pin: str | None = None
    api_secret: str | None = None
    token: str | None = None
    #: The name shown to the room is the guest's, with this in front.
    display_prefix: str = ""
    _session: int | None = None
    _pending: dict[str, str] = field(default_factory=dict)  # transaction -> plugin
    _handles: dict[int, str] = field(default_factory=dict)  # handle id -> plugin

    def check(self, message: Any) -> dict[str, Any]:
        """The message to forward to Janus, or :class:`PolicyError`."""
        if not isinstance(message, dict):
            raise PolicyError("a Janus request is a JSON object")
        verb = message.get("janus")
        if verb not in VERBS:
            raise PolicyError(f"{str(verb)[:32]!r} is not a request a room member makes")
        if not isinstance(message.get("transaction"), str):
            raise PolicyError("every request needs a transaction (a string)")
        out = {k: v for k, v in message.items() if k not in ("apisecret", "token")}
        if verb == "create":
            if self._session is not None:
                raise PolicyError("one Janus session per guest connection")
        else:
            if self._session is None or out.get("session_id") != self._session:
                raise PolicyError("that is not this guest's session")
        if verb == "attach":
            plugin = out.get("plugin")
            if plugin not in MEMBER_REQUESTS:
                raise PolicyError(f"plugin {str(plugin)[:40]!r} is not open to guests")
            if len(self._handles) + len(self._pending) >= MAX_HANDLES:
                raise PolicyError(f"at most {MAX_HANDLES} handles per guest")
            self._pending[out["transaction"]] = str(plugin)
        elif verb in ("message", "trickle", "detach", "hangup"):
            handle = out.get("handle_id")
            plugin = self._handles.get(handle) if isinstance(handle, int) else None
            if plugin is None:
                raise PolicyError("that is not one of this guest's handles")
            if verb == "message":
                out["body"] = self._body(plugin, out.get("body"))
        if self.api_secret is not None:
            out["apisecret"] = self.api_secret
        if self.token is not None:
            out["token"] = self.token
        return out

    def _body(self, plugin: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise PolicyError("a message needs a body (an object)")
        request = body.get("request")
        if request not in MEMBER_REQUESTS[plugin]:
            raise PolicyError(f"{plugin.rsplit('.', 1)[-1]} request {str(request)[:32]!r} "
                              "is not open to guests")
        bad = sorted(FORBIDDEN_KEYS & set(body))
        if bad:
            raise PolicyError(f"{bad[0]!r} is not for guests")
        out = dict(body)
        if "room" in out or request in ("join", "joinandconfigure"):
            # 1234 and "1234" are one room (a server with string ids names it so)
            if str(out.get("room", self.room)) != str(self.room):
                raise PolicyError("guests join only the box's room")
            out["room"] = self.room
            if self.pin is not None:
                out["pin"] = self.pin
        if request in ("join", "joinandconfigure") and plugin != TEXTROOM:
            display = str(out.get("display", "guest"))[:48]
            out["display"] = f"{self.display_prefix}{display}"
            out.pop("id", None)  # Janus picks the guest's id
        return out

    def reply(self, message: Any) -> None:
        """A message from Janus to the guest: learn the session and handles."""
        if not isinstance(message, dict) or message.get("janus") != "success":
            if isinstance(message, dict) and message.get("janus") == "error":
                self._pending.pop(str(message.get("transaction")), None)
            return
        transaction = str(message.get("transaction"))
        data = message.get("data")
        new_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(new_id, int):
            return
        if transaction in self._pending:
            self._handles[new_id] = self._pending.pop(transaction)
        elif self._session is None and "session_id" not in message:
            self._session = new_id
