"""Splitting a byte stream into lines: CR, LF and CRLF end a line; overlong lines are cut.

A line longer than ``max_line`` bytes is delivered once, when its end arrives, marked
``overflow`` and holding only its first ``max_line`` bytes; nothing of it is kept past
that, so memory stays bounded whatever arrives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOL = re.compile(rb"[\r\n]")


@dataclass(frozen=True, slots=True)
class Line:
    data: bytes  # without its terminator
    overflow: bool = False  # longer than the limit; ``data`` is its start


class LineSplitter:
    def __init__(self, max_line: int = 256) -> None:
        if max_line < 1:
            raise ValueError("max_line must be >= 1")
        self.max_line = max_line
        self._buf = bytearray()
        self._overflow = False
        self._skip_lf = False  # the last chunk ended in CR: a leading LF belongs to it

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Line]:
        out: list[Line] = []
        i = 0
        if self._skip_lf and data[:1] == b"\n":
            i = 1
        if data:
            self._skip_lf = False
        n = len(data)
        while i < n:
            m = _EOL.search(data, i)
            if m is None:
                self._append(data[i:])
                break
            j = m.start()
            self._append(data[i:j])
            out.append(Line(bytes(self._buf), self._overflow))
            self._buf.clear()
            self._overflow = False
            if data[j] == 0x0D:  # CR: swallow a following LF (CRLF is one terminator)
                if j + 1 < n:
                    if data[j + 1] == 0x0A:
                        j += 1
                else:
                    self._skip_lf = True
            i = j + 1
        return out

    def _append(self, piece: bytes) -> None:
        if self._overflow or not piece:
            return
        room = self.max_line - len(self._buf)
        if len(piece) > room:
            self._buf += piece[:room]
            self._overflow = True
        else:
            self._buf += piece

    def reset(self) -> None:
        self._buf.clear()
        self._overflow = False
        self._skip_lf = False
