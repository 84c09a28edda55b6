"""How custom room messages travel: JSON text on the TextRoom channel.

``{"edgeroom": 1, "cmd": "<name>", "payload": <any JSON>}``; anything else is plain text.
Any TextRoom client (a browser page, a script) can read and send them.
"""

from __future__ import annotations

import json
from typing import Any

MARKER = "edgeroom"
#: Commands the appliance itself uses.
CMD_HAND = "hand"  # payload {"raised": bool}
CMD_MODERATED = "edgeroom.moderated"  # payload {"id": member, "kind": "audio", "muted": bool}
CMD_MIC = "edgeroom.mic"  # payload {"off": bool}: the sender's own mic (video rooms)


def encode_custom(cmd: str, payload: Any) -> str:
    return json.dumps({MARKER: 1, "cmd": cmd, "payload": payload}, separators=(",", ":"))


def parse_custom(text: str) -> tuple[str, Any] | None:
    """``(cmd, payload)`` for a custom message, None for plain text."""
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get(MARKER) == 1 and isinstance(data.get("cmd"), str):
        return data["cmd"], data.get("payload")
    return None
