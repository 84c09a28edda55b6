"""The network output under FFmpeg's protocols: clear errors, bounded calls, no GIL held."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from services.media.mux import MuxError
from services.media.netout import NetworkOutput


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_says_so() -> None:
    out = NetworkOutput(f"rtmp://127.0.0.1:{_free_port()}/live/key", timeout=5)
    with pytest.raises(MuxError, match="cannot connect: Connection refused"):
        out.open()
    with pytest.raises(MuxError, match="closed connection"):
        out.write(b"x")
    out.close()  # nothing to close: no error


def test_only_network_protocols_are_opened(tmp_path: Path) -> None:
    target = tmp_path / "not-written"
    with pytest.raises(MuxError, match="cannot connect"):
        NetworkOutput(f"file:{target}", timeout=5).open()
    assert not target.exists()


def test_a_silent_server_is_given_up_on_and_abort_ends_a_connect_at_once() -> None:
    with socket.socket() as silent:  # the kernel completes the connection; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"rtmp://127.0.0.1:{silent.getsockname()[1]}/live/key"
        started = time.monotonic()
        with pytest.raises(MuxError, match=r"no answer for 0\.5 s"):
            NetworkOutput(url, timeout=0.5).open()
        assert time.monotonic() - started < 5

        out = NetworkOutput(url, timeout=30)
        errors: list[str] = []
        ticks = 0

        def connect() -> None:
            try:
                out.open()
            except MuxError as exc:
                errors.append(str(exc))

        thread = threading.Thread(target=connect)
        thread.start()
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # this thread runs while the other one connects
            ticks += 1
            time.sleep(0.01)
        out.abort()
        thread.join(5)
        assert not thread.is_alive()
        assert errors == ["cannot connect: stopped"]
        assert ticks > 10
