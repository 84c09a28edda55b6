"""A capture PCM fed from a FIFO in real time, and whether this process holds it open.

alsa-lib's ``type file`` PCM opens its ``infile`` read-only when the PCM opens and
closes it when the PCM closes, so an fd of this process on the FIFO, open for reading,
is exactly "the capture device is open".
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from pathlib import Path

import numpy as np

RATE = 48_000
FRAME = RATE // 50  # 20 ms


class FifoMic:
    """Writes a sine into ``path`` (a new FIFO) at real-time pace from a thread.

    The writer holds the FIFO open read-write and never blocks: while nobody reads,
    frames that do not fit are dropped.
    """

    def __init__(self, path: Path, freq: float = 440.0, amplitude: int = 12000) -> None:
        self.path = path
        os.mkfifo(path)
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        t = np.arange(RATE, dtype=np.float64) / RATE  # one second, an integral number of cycles
        self._second = (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fifo-mic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        step = FRAME * 2
        offset = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            chunk = self._second[offset:offset + step]
            offset = (offset + step) % len(self._second)
            try:
                os.write(self._fd, chunk)
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    return
            next_at += FRAME / RATE
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self._fd)


def capture_open(fifo: Path, pid: int | str = "self") -> bool:
    """True while process ``pid`` has ``fifo`` open for reading only (the capture PCM)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in fd_dir.iterdir():
        try:
            if os.readlink(entry) != str(fifo):
                continue
            info = (Path(f"/proc/{pid}/fdinfo") / entry.name).read_text()
        except OSError:
            continue  # closed meanwhile
        match = re.search(r"^flags:\s+([0-7]+)", info, re.M)
        if match and int(match.group(1), 8) & os.O_ACCMODE == os.O_RDONLY:
            return True
    return False
