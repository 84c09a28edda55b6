"""The far end of a serial cable for tests: a pty master behind a re-pointable symlink."""

from __future__ import annotations

import os
import select
import tty
from pathlib import Path

TIMEOUT_S = 5.0


class Pty:
    """The far end of a serial cable: the master side of a pty, reached through a
    symlink that can be re-pointed (as udev's /dev/serial/by-id links are)."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation before pyserial opens it
        name = os.ttyname(slave)
        os.close(slave)
        self.master = master
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        os.replace(tmp, self.link)

    def unplug(self) -> None:
        os.close(self.master)
        self.master = -1
        self.link.unlink()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def recv_until(self, end: bytes, timeout: float = TIMEOUT_S) -> bytes:
        got = b""
        while end not in got:
            ready, _, _ = select.select([self.master], [], [], timeout)
            if not ready:
                raise TimeoutError(f"no {end!r} from the device; got {got!r}")
            got += os.read(self.master, 4096)
        return got

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
