"""Serial commands of devices switched live (registered in ``COMMANDS``).

``DEVICE MIC|SPEAKER|CAMERA id`` switches, ``DEVICES?`` says which are in use;
``CAMERA MIRROR ON|OFF|TOGGLE``, ``CAMERA ROTATE 0|90|180|270`` and ``CAMERA?`` turn the
camera's picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.serial_control.commands import COMMANDS, Line, _word, command, words
from services.serial_control.format import ProtocolError, ok, quote


@command("DEVICE", "DEVICE MIC|SPEAKER|CAMERA id", 2, 2)
async def _device(s: Line, args: list[str], rest: str) -> list[str]:
    kind = _word(args, 0, words("device", "kind"), COMMANDS["DEVICE"].usage)
    result = await s.act("device", {"kind": kind.lower(), "id": args[1]})
    return [ok("DEVICE", kind, quote(args[1]), data={"live": result.get("live")})]


@command("DEVICES?", "DEVICES?")
async def _devices_q(s: Line, args: list[str], rest: str) -> list[str]:
    in_use: Mapping[str, Any] = s.status().get("devices_in_use") or {}
    if not in_use:
        raise ProtocolError("UNAVAILABLE", "devices cannot be switched now")
    return [ok("DEVICES", data=dict(in_use))]


@command("CAMERA", "CAMERA MIRROR ON|OFF|TOGGLE | CAMERA ROTATE 0|90|180|270", 2, 2)
async def _camera(s: Line, args: list[str], rest: str) -> list[str]:
    usage = COMMANDS["CAMERA"].usage
    what = _word(args, 0, ("MIRROR", "ROTATE"), usage)
    if what == "MIRROR":
        value = _word(args, 1, words("camera", "mirror"), usage).lower()
    else:
        value = _word(args, 1, words("camera", "rotate"), usage)
    result = await s.act("camera", {what.lower(): value})
    return [ok("CAMERA", data=result)]


@command("CAMERA?", "CAMERA?")
async def _camera_q(s: Line, args: list[str], rest: str) -> list[str]:
    orientation: Mapping[str, Any] = s.status().get("camera_orientation") or {}
    if not orientation:
        raise ProtocolError("UNAVAILABLE", "the box has no camera")
    return [ok("CAMERA", data=dict(orientation))]
