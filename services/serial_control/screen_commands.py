"""The serial commands of the room screen: ``LAYOUT`` and ``PIN`` (they join the command
table on import; :mod:`services.serial_control.session` imports this module)."""

from __future__ import annotations

from services.serial_control.commands import COMMANDS, Line, _word, command, words
from services.serial_control.format import ok, quote


@command("LAYOUT", "LAYOUT GRID|SPEAKER|SINGLE|NEXT", 1, 1)
async def _layout(s: Line, args: list[str], rest: str) -> list[str]:
    layout = _word(args, 0, words("layout", "layout"), COMMANDS["LAYOUT"].usage)
    result = await s.act("layout", {"layout": layout.lower()})
    return [ok("LAYOUT", str(result.get("layout", "")).upper())]


@command("PIN", "PIN id|NONE", 1, 1)
async def _pin(s: Line, args: list[str], rest: str) -> list[str]:
    target = args[0]
    params = {} if target.upper() == "NONE" else {"id": target}
    result = await s.act("pin_member", params)
    pinned = result.get("pinned")
    return [ok("PIN", "NONE" if pinned is None else quote(str(pinned)))]
