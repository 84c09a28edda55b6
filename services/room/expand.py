"""Concealment of lost packets that keeps a voice's level where libopus's does not.

libopus's packet-loss concealment (PLC) and in-band FEC are tried first. They are not
always good: on a CELT stream a loss one good packet after another one makes PLC all
but silent (-25 dB on a steady voice); on a SILK stream without FEC data PLC comes out
6 dB low and leaves the decoder's state faded, so that the packet after it plays at a
fifth of its level. Either costs two 20 ms windows per loss.

:class:`Concealer` sits beside the decoder in the jitter buffer. It keeps the last
samples played and the level of the last decoded packet, and judges every concealment
libopus made (its level, and the level of the packet decoded after it) against that.
It conceals with the last pitch period played, repeated
(:func:`services.room.stretch.find_period`) at the expected level, instead:
- when libopus's concealment came out more than 6 dB low;
- when libopus has done badly on this stream lately (``trust`` under one half; every
  ``PROBE_EVERY``-th loss with the next packet there still goes to libopus's PLC, so
  that it can win the trust back), or a loss came within ``RECENT``
  packets of the last one. Then the decoder is not told about the loss at all: its
  next packet decodes from the state the last good one left, which plays at 70-95 %
  of the level rather than 20 %.

On a SILK or hybrid stream (what libopus sends for voice, and for anything once it
plans in-band FEC for loss) the choice is made from the packets themselves: a loss
whose next packet carries FEC data (LBRR,
:func:`services.audio.opus_lbrr.carries_lbrr`) is rebuilt from it, always (libopus's
decode of it is the packet at a lower bitrate: within 0.1 dB on a steady tone, and the
decoder goes on at full level); one without is never handed to libopus's PLC (6 dB
low, then the next packet 12 dB low) but repeated here, the decoder not told.

Only a next packet that carries LBRR data is handed to libopus's ``decode_fec`` and
counted as a FEC recovery; libopus would decode any other (a CELT packet, a SILK one
without LBRR) as plain PLC, and so it is done and counted here: as concealment.

Concealment keeps the level ``HOLD_MS``, then fades out over ``FADE_MS``. The packet
decoded after a repetition is cross-faded in over ``MERGE_MS`` and, when it comes out
too quiet, lifted (at most ``MAX_GAIN``) back to its own level within the packet (as
NetEq's "expand" and "merge" do).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

from drivers.lazy import lazy_module
from services.audio.opus_lbrr import carries_lbrr
from services.room.stretch import find_period

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    Samples = npt.NDArray[np.int16]
else:
    np = lazy_module("numpy", globals(), "np")


HOLD_MS = 60.0
FADE_MS = 240.0
MAX_GAIN = 2.0
MERGE_MS = 2.5
#: How fast the trust in libopus follows its results, and when it is re-tried.
TRUST_STEP = 0.3
PROBE_EVERY = 16
#: A loss this many packets after the last concealment is concealed here.
RECENT = 3
@functools.cache
def empty_block() -> Samples:
    """The empty block (one array, made on first use: numpy loads with the room)."""
    return np.zeros(0, dtype=np.int16)


def has_silk_layer(packet: bytes) -> bool:
    """Whether an Opus packet is SILK-only or hybrid (TOC configs 0-15, RFC 6716 3.1)."""
    return bool(packet) and packet[0] >> 3 < 16


def _rms(x: Any) -> float:
    if not len(x):
        return 0.0
    f = np.asarray(x, dtype=np.float64)
    return math.sqrt(float(np.dot(f, f)) / len(f))


class Concealer:
    def __init__(self, rate: int = 48_000) -> None:
        self.rate = rate
        self._keep = rate // 25  # 40 ms of history
        self._history: Samples = empty_block()
        self._level = 0.0  # RMS of the last decoded packet
        self._run = 0  # samples concealed in a row
        self._since = RECENT  # packets decoded since the last concealment
        self._repeat: tuple[npt.NDArray[np.float64], int] | None = None  # (cycle, phase)
        self._judging = False  # libopus concealed last: judge the next packet too
        self._losses = 0
        self._silk = False  # the last packet decoded had a SILK layer
        self.trust = 1.0
        self.replaced = 0  # concealment blocks made here

    def played(self, block: Samples) -> None:
        """Samples handed to the speaker (decoded or concealed), in order."""
        if len(block) >= self._keep:
            self._history = block[-self._keep:]
        elif len(block):
            self._history = np.concatenate((self._history, block))[-self._keep:]

    def _gain(self, at: int) -> float:
        ms = at * 1000.0 / self.rate - HOLD_MS
        return 1.0 if ms <= 0 else max(0.0, 1.0 - ms / FADE_MS)

    def _judge(self, ratio: float) -> None:
        self.trust += TRUST_STEP * (min(1.0, ratio) - self.trust)

    def conceal(self, decoder: Any, samples: int, following: bytes | None = None
                ) -> tuple[Samples, bool]:
        """``samples`` for a loss: from ``decoder`` (FEC from ``following`` when given,
        else PLC) or made here. Also says whether libopus's FEC was used."""
        start, self._run = self._run, self._run + samples
        if start == 0:
            self._losses += 1
        if following is not None and carries_lbrr(following):
            self._since = 0
            return self.decoded(decoder.decode_fec(following, samples)), True
        expected = self._level * self._gain(self._run)
        ask = self._repeat is None and not self._silk and (
            start > 0 or (following is not None and self._losses % PROBE_EVERY == 0)
            or (self.trust >= 0.5 and self._since >= RECENT))
        self._since = 0
        if ask or self._level <= 0 or len(self._history) < self._keep:
            pcm = decoder.conceal(samples)  # no FEC data in the next packet: PLC
            if self._repeat is None:
                if self._level > 0 and start == 0:
                    self._judge(_rms(pcm) / max(1.0, expected))
                    self._judging = True
                if self._level <= 0 or _rms(pcm) >= expected / 2:
                    return pcm, False
        return self._repeated(start, samples), False

    def _repeated(self, start: int, samples: int) -> Samples:
        if self._repeat is None:
            period, _ = find_period(self._history[-self.rate // 50:], self.rate)
            if period <= 0:
                return np.zeros(samples, np.int16)
            cycle = self._history[-period:].astype(np.float64)
            scale = min(MAX_GAIN, self._level / max(1.0, _rms(cycle)))
            self._repeat = (cycle * scale, 0)
        cycle, phase = self._repeat
        idx = (phase + np.arange(samples)) % len(cycle)
        ramp = np.linspace(self._gain(start), self._gain(self._run), samples, endpoint=False)
        self._repeat = (cycle, int((phase + samples) % len(cycle)))
        self.replaced += 1
        return np.clip(cycle[idx] * ramp, -32768, 32767).astype(np.int16)

    def decoded(self, pcm: Samples, packet: bytes | None = None) -> Samples:
        """A block decoded from a packet (``packet``, when given, tells the stream's
        mode): merged in after a concealment."""
        if packet:
            self._silk = has_silk_layer(packet)
        repeat, self._repeat = self._repeat, None
        gain_at_end = self._gain(self._run)
        after_loss = self._run > 0
        self._run = 0
        self._since += 1
        level = _rms(pcm)
        want = self._level * gain_at_end
        if self._judging:
            self._judging = False
            self._judge(level / max(1.0, want))
        faded = after_loss and 0 < level < want / 2  # the decoder's state faded
        if not faded:
            self._level = level
        if (repeat is None and not faded) or not len(pcm):
            return pcm
        x = pcm.astype(np.float64)
        if faded:  # lift it, then let go within the packet
            x = x * np.linspace(min(MAX_GAIN, want / level), 1.0, len(x))
        if repeat is not None:
            cycle, phase = repeat
            n = min(len(x), int(self.rate * MERGE_MS / 1000))
            tail = cycle[(phase + np.arange(n)) % len(cycle)] * gain_at_end
            fade = np.linspace(0.0, 1.0, n, endpoint=False)
            x[:n] = tail * (1 - fade) + x[:n] * fade
        return np.clip(x, -32768, 32767).astype(np.int16)
