"""The replay window and rollover counter of one SRTP or SRTCP stream (RFC 3711, 3.3.1
and 3.3.2), as libsrtp keeps them."""

from __future__ import annotations


class Window:
    """The highest index seen of one stream, and which of the ``size`` before it were."""

    __slots__ = ("highest", "seen", "size")

    def __init__(self, size: int) -> None:
        self.highest, self.seen, self.size = 0, 0, size

    def check(self, index: int) -> str:
        """"" when ``index`` is new, else the libsrtp status for it."""
        behind = self.highest - index
        if behind < 0:
            return ""
        if behind >= self.size:
            return "replay_old"
        return "replay_fail" if self.seen >> behind & 1 else ""

    def add(self, index: int) -> None:
        ahead = index - self.highest
        if ahead > 0:
            self.seen = (self.seen << ahead | 1) & ((1 << self.size) - 1)
            self.highest = index
        else:
            self.seen |= 1 << -ahead

    def estimate(self, seq: int) -> int:
        """The 48-bit index of sequence number ``seq`` (RFC 3711, 3.3.1, as libsrtp: with
        a rollover counter of 0 while the stream is in its first 32768 packets)."""
        highest = self.highest
        if highest <= 0x8000:
            return seq
        roc, local = highest >> 16, highest & 0xFFFF
        if local < 0x8000:
            if seq - local > 0x8000:
                roc -= 1
        elif local - 0x8000 > seq:
            roc += 1
        return (roc & 0xFFFFFFFF) << 16 | seq
