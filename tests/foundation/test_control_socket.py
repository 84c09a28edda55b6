"""The control socket on a real AF_UNIX stream socket."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path

from device.control_socket import ControlSocket, query

T = 5.0


async def test_answers_health_refuses_garbage_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # left over by a process that died: replaced
    stale.close()
    assert await asyncio.wait_for(query(path), T) is None  # nothing answers: "not running"
    server = ControlSocket(path, lambda what: {"health": {"healthy": True, "probes": []}})
    assert await asyncio.wait_for(server.start(), T)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        reply = await asyncio.wait_for(query(path), T)
        assert reply == {"ok": True, "health": {"healthy": True, "probes": []}}
        unknown = await asyncio.wait_for(query(path, "secrets"), T)
        assert unknown is not None and not unknown["ok"] and "secrets" in unknown["error"]
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"{not json\n")
        line = await asyncio.wait_for(reader.readline(), T)
        writer.close()
        assert b'"ok":false' in line and b"not JSON" in line
        # a second appliance on the same state dir does not take the socket over
        other = ControlSocket(path, lambda what: {})
        assert not await asyncio.wait_for(other.start(), T)
        assert (await asyncio.wait_for(query(path), T) or {}).get("ok")
    finally:
        await asyncio.wait_for(server.close(), T)
    assert not path.exists()
