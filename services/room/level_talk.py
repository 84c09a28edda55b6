"""Who is talking, from the audio level in each member's packets, where the room server
does not say.

Janus's VideoRoom tells its members who is talking (``talking`` / ``stopped-talking``)
only in rooms with ``audiolevel_event``, which is off by Janus's default and in its own
sample demo room; the rooms the box configures itself turn it on. In the others, each
member's packets still carry their RFC 6464 audio level (Janus keeps the extension for
its subscribers; Chromium, aiortc and the box put it on every packet), and the box
decides as Janus would: over each window of :data:`WINDOW` packets, a member whose
average level is louder than :data:`THRESHOLD` (-dBov) is talking. The two numbers are
the ones the box gives the rooms it configures (``audio_active_packets``,
``audio_level_average``), so ``talking`` means the same in every room. A window also
closes after :data:`WINDOW_S` seconds: a sender with Opus DTX sends one packet every
400 ms while silent, and 25 of those would keep a member "talking" for 10 s after they
stopped.

A room server can also be set not to negotiate the level at all (VideoRoom
``audiolevel_ext = false``): the packets then carry none, and the mixer hands on, for
each such packet, the level of that member's voice as the box last decoded it
(:func:`packet_level`), so the same windows decide.

As soon as the server says who is talking (a ``talking`` event, or a ``talking`` flag in
the members it lists), it decides for the rest of the stay, and the levels are ignored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

#: Packets per decision (0.5 s of 20 ms packets).
WINDOW = 25
#: Average RFC 6464 level (0 loudest, 127 silence) under which a member is talking.
THRESHOLD = 60
#: The longest a window lasts (twice the 25 packets of 20 ms), whatever its count.
WINDOW_S = 1.0


def level_of_dbfs(dbfs: float) -> int:
    """The RFC 6464 level (-dBov, 0 to 127) of an RMS level in dBFS."""
    if dbfs != dbfs or dbfs <= -127.0:  # NaN or -inf: silence
        return 127
    return int(min(127, max(0, round(-dbfs))))


class DecodedVoice(Protocol):
    """A member's voice as the mixer plays it."""

    key: str
    #: the level (dBFS) of its last measured block (on the speaker thread)
    level_dbfs: float


def packet_level(voice: DecodedVoice, on_level: Callable[[str, int], None],
                 level: int | None) -> None:
    """A packet of ``voice`` arrived (on the loop) with the RFC 6464 ``level``, or with
    none: then the level of the voice as the speaker thread last measured it decoded (a
    float, read whole), so who is talking is known in rooms whose server negotiates no
    level."""
    on_level(voice.key, level_of_dbfs(voice.level_dbfs) if level is None else level)


class LevelTalk:
    """Per member, the levels of the current window; tells ``set_talking`` the outcome."""

    def __init__(self, set_talking: Callable[[str, bool], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._set_talking = set_talking
        self._clock = clock
        # member id -> [sum of levels, count, when the window started]
        self._windows: dict[str, list[float]] = {}
        #: The server tells who is talking (this stay): the levels are not used.
        self.server_decides = False

    def __repr__(self) -> str:
        who = "server" if self.server_decides else f"levels of {len(self._windows)}"
        return f"<LevelTalk {who}>"

    def heard(self, member_id: str, level: int) -> None:
        """One packet of ``member_id``'s voice, with its RFC 6464 ``level``."""
        if self.server_decides:
            return
        now = self._clock()
        window = self._windows.get(member_id)
        if window is None or window[1] == 0:
            window = self._windows[member_id] = [0, 0, now]
        window[0] += level
        window[1] += 1
        if window[1] >= WINDOW or now - window[2] >= WINDOW_S:
            talking = window[0] < THRESHOLD * window[1]
            window[0] = window[1] = 0
            self._set_talking(member_id, talking)

    def server_told(self) -> bool:
        """The server told who is talking; returns True the first time (this stay)."""
        if self.server_decides:
            return False
        self.server_decides = True
        self._windows.clear()
        return True

    def forget(self, member_id: str) -> None:
        self._windows.pop(member_id, None)

    def clear(self) -> None:
        """A new stay: the levels decide until the server says otherwise."""
        self._windows.clear()
        self.server_decides = False
