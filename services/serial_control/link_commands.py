"""The serial commands of the link actions (``LINK``, ``UNLINK``, ``LINKANSWER``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.serial_control.commands import COMMANDS, _word, command, words
from services.serial_control.format import ProtocolError, ok, quote

if TYPE_CHECKING:
    from services.serial_control.session import ControlSession

DIRECTIONS = words("link", "direction")


@command("LINK", "LINK name ws://host:port room BOTH|SEND|RECEIVE [secret]", 4, 5)
async def _link(s: ControlSession, args: list[str], rest: str) -> list[str]:
    usage = COMMANDS["LINK"].usage
    name, server, room = args[0], args[1], args[2]
    if not room.isdigit():
        raise ProtocolError("BAD_ARGUMENT", f"usage: {usage}")
    direction = _word(args, 3, DIRECTIONS, usage).lower()
    params: dict[str, object] = {"name": name, "server": server, "room": int(room),
                                 "direction": direction}
    if len(args) == 5:  # without a secret the far room is asked
        params["secret"] = args[4]
    result = await s.act("link", params)
    return [ok("LINK", quote(name), str(result.get("state", "")))]


@command("UNLINK", "UNLINK name", 1, 1)
async def _unlink(s: ControlSession, args: list[str], rest: str) -> list[str]:
    await s.act("unlink", {"name": args[0]})
    return [ok("UNLINK", quote(args[0]))]


@command("LINKANSWER", "LINKANSWER id ACCEPT|DECLINE [reason]", 2, None)
async def _link_answer(s: ControlSession, args: list[str], rest: str) -> list[str]:
    request_id = args[0]
    answer = _word(args, 1, words("link_answer", "answer"), COMMANDS["LINKANSWER"].usage)
    params: dict[str, object] = {"id": request_id, "answer": answer.lower()}
    reason = rest.split(None, 2)[2].strip() if len(rest.split(None, 2)) > 2 else ""
    if reason:
        params["reason"] = reason
    await s.act("link_answer", params)
    return [ok("LINKANSWER", quote(request_id), answer)]
