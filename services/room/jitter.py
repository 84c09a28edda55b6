"""JitterBuffer: one remote voice, from RTP packets to evenly paced 48 kHz samples.

Packets come in on the event loop (:meth:`JitterBuffer.put`, with their arrival time);
the speaker thread pulls exactly the samples the device wants (:meth:`JitterBuffer.pull`).
A lock keeps the two apart; Opus is decoded on the pulling thread, packet by packet.

- **Order.** Packets are kept by (unwrapped) sequence number and played in order, so
  reordered packets are put back in place. One that comes after its turn is *late*
  and dropped.
- **Target delay.** From the packets' transits and their spikes
  (:mod:`services.room.jitter_target`): a few ms on a clean LAN; it grows at once
  with the jitter and shrinks once its window has forgotten it. While losses come
  whose next packet carries in-band FEC data but came too late for it, it holds one
  packet time more, so that next packet is there when the lost one is due
  (``fec_headroom_ms``).
- **Delay.** What is kept at ``target`` is the least time a packet gets between its
  earliest possible arrival and the pull that needs it, whatever the packet and pull
  sizes, timed when the pull was due on the card's schedule, not when a late thread
  came for it (:mod:`services.room.pullgrid`). Under it a decoded block is played a pitch
  period longer, over it a period shorter (:mod:`services.room.stretch`), one change per
  ``STRETCH_EVERY`` packets and ``SHORTEN_EVERY_MS`` at most (each packet while far over,
  after a stall), so jitter steps and clock drift move the delay a few ms at a time.
- **Loss.** A missing packet with a later one there is lost: rebuilt from the next
  packet's in-band FEC, else concealed (Opus PLC or :mod:`services.room.expand`). When
  nothing is there (an underrun) PLC fills in without waiting to refill; the packet
  plays when it comes (stretching gives the delay back). After ``max_conceal_ms`` of
  concealment in a row the voice goes quiet until packets come again.
- **Bounds.** A delay more than ``flush_ms`` over target (after a stall of this box,
  say) is cut back by dropping whole packets; at most ``max_packets`` wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from math import ceil
from typing import TYPE_CHECKING, Any

from drivers.lazy import lazy_module
from services.audio.opus import OpusDecoder, OpusError
from services.audio.opus_lbrr import carries_lbrr
from services.room.expand import Concealer, empty_block
from services.room.jitter_target import DelayTarget
from services.room.pullgrid import PullClock, first_pull_wait_ms, grid, lead_ms
from services.room.stretch import MIN_PERIOD_MS, accelerate, decelerate, find_period

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    Samples = npt.NDArray[np.int16]
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)


#: Packets decoded before the delay is lengthened again (every 100 ms with 20 ms packets).
STRETCH_EVERY = 5
#: Audio decoded before it is shortened again (ms), judged on the least lead over it: over
#: 5 packets of 10 ms a late pull made the lead look high (shortened, then lengthened).
SHORTEN_EVERY_MS = 100.0
#: Further over target than this FAR_BLOCKS blocks in a row (after a stall; one alone is
#: often a late pull), every packet is shortened.
FAR_OVER_MS, FAR_BLOCKS = 40.0, 3
#: A sequence jump this large is a new stream, not loss.
RESET_JUMP = 1000
class JitterBuffer:
    def __init__(self, *, rate: int = 48_000, min_ms: float = 10.0, max_ms: float = 300.0,
                 margin_ms: float = 4.0, percentile: float = 95.0, window_s: float = 4.0,
                 max_conceal_ms: float = 200.0, flush_ms: float = 100.0,
                 max_packets: int = 100, clock: Callable[[], float] = time.monotonic,
                 decoder: Callable[[], Any] = OpusDecoder) -> None:
        self.rate = rate
        self.margin_ms = margin_ms
        self._target = DelayTarget(rate=rate, min_ms=min_ms, max_ms=max_ms,
                                   margin_ms=margin_ms, percentile=percentile,
                                   window_s=window_s)
        self.max_conceal = int(max_conceal_ms * rate / 1000)
        self.flush_ms = flush_ms
        self.max_packets = max_packets
        self._clock = clock
        self._decoder = decoder()
        self._concealer = Concealer(rate)  # when libopus's PLC collapses
        self._lock = threading.Lock()
        # packets that came while the lock was busy: (seq, timestamp, payload, arrival)
        self._inbox: deque[tuple[int, int, bytes, float]] = deque()
        self._packets: dict[int, tuple[int, bytes, float]] = {}  # seq -> (ts, payload, arrival)
        self._top_seq: int | None = None  # highest extended sequence number seen
        self._top_ts = 0
        self._next: int | None = None  # the sequence number to play next
        self._frame = rate // 50  # samples per packet, learned from the packets
        self._out: Samples = empty_block()  # decoded, waiting to be pulled
        self._playing = False
        self._covered = 0  # samples concealed for the packet due now (underrun)
        self._conceal_run = self._since_stretch = 0
        self._bases: deque[float] = deque(maxlen=int(SHORTEN_EVERY_MS / 2.5))  # 2.5 ms packets
        self._pull, self._pulls = rate // 50, PullClock(rate)  # samples per pull, their times
        self.delay_ms = 0.0
        # counters
        self.packets = self.late = self.lost = self.fec = self.underruns = self.dropped = 0
        self.samples_out = self.samples_concealed = self.samples_stretched = 0
        self.accelerated = self.decelerated = 0

    def __repr__(self) -> str:
        return (f"<JitterBuffer target={self.target_ms:.1f} ms delay={self.delay_ms:.1f} ms "
                f"waiting={len(self._packets)} late={self.late} lost={self.lost} "
                f"fec={self.fec}>")

    # -- the network side ---------------------------------------------------------------

    def put(self, seq: int, timestamp: int, payload: bytes, arrival: float | None = None) -> None:
        """One RTP packet (16-bit ``seq``, 32-bit ``timestamp``, Opus ``payload``).

        Never waits for the speaker thread: while it is pulling (decoding, concealing),
        the packet is left in an inbox that the next put or pull takes in, in order. On
        a starved CPU a pull can hold the lock for a long time, and the event loop that
        calls this also sends the box's own audio.
        """
        if not payload:
            return
        item = (seq, timestamp, payload, self._clock() if arrival is None else arrival)
        if not self._lock.acquire(blocking=False):
            self._inbox.append(item)
            return
        try:
            self._take_inbox()
            self._put(*item)
        finally:
            self._lock.release()

    def _take_inbox(self) -> None:
        """Put what came while the lock was busy (with the lock held)."""
        inbox = self._inbox
        while inbox:
            self._put(*inbox.popleft())

    def _put(self, seq: int, timestamp: int, payload: bytes, now: float) -> None:
        """One packet (with the lock held)."""
        if self._top_seq is None:
            ext, ts = seq, timestamp
            self._top_seq, self._top_ts = ext, ts
        else:
            ext = self._top_seq + _delta(seq, self._top_seq, 16)
            ts = self._top_ts + _delta(timestamp, self._top_ts, 32)
            if abs(ext - self._top_seq) > RESET_JUMP:
                log.info("jitter buffer: sequence jumped by %d: a new stream",
                         ext - self._top_seq)
                self._restart(seq, timestamp)
                ext, ts = seq, timestamp
            elif ext > self._top_seq:
                self._top_seq, self._top_ts = ext, ts
        self.packets += 1
        if self._next is None:
            self._next = ext
        elif ext < self._next:
            self.late += 1  # its turn has passed
            self._target.arrived(ts, now)
            return
        if ext in self._packets:
            return  # a duplicate
        self._packets[ext] = (ts, payload, now)
        self._target.arrived(ts, now)
        while len(self._packets) > self.max_packets:
            oldest = min(self._packets)
            del self._packets[oldest]
            self.dropped += 1
            self._next = max(self._next, oldest + 1)

    def use_decoder(self, decoder: Any) -> None:
        """Decode with ``decoder`` from now on (the sender changed codec): a new stream."""
        with self._lock:
            old, self._decoder = self._decoder, decoder
            self._restart(None, 0)
        old.close()

    def _restart(self, seq: int | None, timestamp: int) -> None:
        self._packets.clear()
        self._top_seq, self._top_ts = seq, timestamp
        self._next = None
        self._playing = False
        self._target.clear()

    @property
    def target_ms(self) -> float:
        """The delay kept (:mod:`services.room.jitter_target`)."""
        return self._target.target_ms

    @property
    def jitter_ms(self) -> float:
        return self._target.jitter_ms

    # -- the playout side ---------------------------------------------------------------

    def pull(self, count: int) -> Samples | None:
        """``count`` samples to play now, or None while the voice is quiet."""
        with self._lock:
            self._take_inbox()
            now = self._pulls.due(self._clock(), count)  # when the card plays it
            if not self._playing and not self._ready(now, count):
                return None
            out = self._out
            parts = [out] if len(out) else []
            have = len(out)
            self._pull = count
            while have < count:
                block = self._next_block(now, have, count - have)
                if block is None:
                    break
                parts.append(block)
                have += len(block)
                self._concealer.played(block)
            if have == 0:
                self._out = empty_block()
                return None
            data = np.concatenate(parts) if len(parts) > 1 else parts[0]
            if have < count:  # went quiet in the middle of this pull
                data = np.concatenate((data, np.zeros(count - have, np.int16)))
            self._out = data[count:]
            self.samples_out += count
            return data[:count]

    def _ready(self, now: float, count: int) -> bool:
        """Start (or start again): once the first packet has waited its target."""
        if self._next is None or not self._packets:
            return False
        first = min(self._packets)
        self.lost += max(0, first - self._next)  # gone while the voice was quiet
        self._next = first
        ts = self._packets[first][0]
        if 0 < (self._packets.get(first + 1) or (ts,))[0] - ts <= self.rate * 3 // 25:
            self._frame = self._packets[first + 1][0] - ts  # from the timestamps
        # every packet the first pull needs must be here (services.room.pullgrid)
        delay = (now - ts / self.rate - self._target.min_transit) * 1000
        if delay < self.target_ms + first_pull_wait_ms(self._frame, count, self.rate):
            return False
        self._playing = True
        self._conceal_run = 0
        self._covered = 0
        return True

    def _next_block(self, now: float, have: int, need: int) -> Samples | None:
        """The next packet's samples (or their concealment) for a pull at ``now`` that
        has ``have`` samples already and needs ``need`` more."""
        assert self._next is not None
        packet = self._packets.pop(self._next, None)
        while packet is not None:
            # Needed now (it must have come by now), heard ``have`` samples later.
            due = (now - packet[0] / self.rate - self._target.min_transit) * 1000
            if due - self.target_ms <= self.flush_ms or self._next + 1 not in self._packets:
                return self._play(packet, due, have)
            self.dropped += 1  # far too much delay (a stall): skip to catch up
            self._next += 1
            packet = self._packets.pop(self._next)
        if self._packets:  # a later packet is here: this one is lost
            return self._lost(now)
        if self._conceal_run >= self.max_conceal:
            self._playing = False  # the sender went quiet
            return None
        samples = max(120, -(-need // 120) * 120)  # PLC runs in 2.5 ms steps
        pcm = self._conceal(samples)
        if self._covered == 0:
            self.underruns += 1
        self._covered += len(pcm)
        return pcm

    def _play(self, packet: tuple[int, bytes, float], due: float, have: int) -> Samples:
        assert self._next is not None
        self._next += 1
        self._covered = 0
        self._conceal_run = 0
        try:
            pcm = self._decoder.decode(packet[1])
        except OpusError as exc:
            log.debug("jitter buffer: undecodable packet (%s): concealed", exc)
            return self._conceal(self._frame)
        if len(pcm):
            self._frame = len(pcm)
        pcm = self._concealer.decoded(pcm, packet[1] if self._decoder.opus else None)
        self.delay_ms = due + have * 1000 / self.rate
        return self._regulate(pcm, due, have)

    def _lost(self, now: float) -> Samples:
        assert self._next is not None
        slot = self._next
        self._next += 1
        self.lost += 1
        following = self._packets.get(slot + 1) if self._decoder.opus else None  # FEC
        self._target.lost(now, self._frame * 1000 / self.rate,
                          fec=following is not None and carries_lbrr(following[1]),
                          missed=self._covered >= self._frame)
        if self._covered >= self._frame:  # concealed already while it was awaited
            self._covered -= self._frame
            return empty_block()
        self._covered = 0
        return self._conceal(self._frame, None if following is None else following[1])

    def _conceal(self, samples: int, following: bytes | None = None) -> Samples:
        """Concealment: FEC from ``following``, Opus PLC, or a repeated pitch period."""
        try:
            pcm, fec = self._concealer.conceal(self._decoder, samples, following)
        except OpusError as exc:
            if following is not None:  # the next packet is undecodable: conceal without it
                return self._conceal(samples)
            log.debug("jitter buffer: concealment failed (%s): silence", exc)
            pcm, fec = np.zeros(samples, np.int16), False
        self.fec += fec  # FEC data is decoded audio: not counted as concealed (as WebRTC)
        self.samples_concealed += 0 if fec else len(pcm)
        self._conceal_run += 0 if fec else len(pcm)
        return pcm

    def _regulate(self, pcm: Samples, due: float, have: int) -> Samples:
        """Stretch the block toward the target (lengthen at most every STRETCH_EVERY
        packets, shorten at most every SHORTEN_EVERY_MS of audio).

        What is kept at the target is the *lead*, the least time any coming packet gets
        to arrive before the pull that needs it (:mod:`services.room.pullgrid`), from
        ``base``, how long after its earliest arrival a packet is heard. A period is
        added while the lead is under the target; one is removed while the lead stays at
        or over it after the removal.
        """
        rate = self.rate
        base = due + have * 1000 / rate
        self._bases.append(base)
        self._since_stretch, pull = self._since_stretch + 1, self._pull
        step = grid(self._frame, pull)
        phase = (have + len(pcm)) % step  # where the next packet starts
        target = self.target_ms
        recent = min(islice(reversed(self._bases), FAR_BLOCKS))  # the last blocks' least
        far = lead_ms(recent, phase, pull, step, rate) - target > FAR_OVER_MS
        if (self._since_stretch < STRETCH_EVERY and not far) or len(pcm) < rate // 100:
            return pcm
        # thread wake-ups vary: trust the least of the last blocks
        least = recent if far else min(islice(reversed(self._bases), STRETCH_EVERY))
        now = lead_ms(least, phase, pull, step, rate)
        if (now >= target and phase * 1000 / rate < MIN_PERIOD_MS
                and now - step * 1000 / rate < target):
            return pcm  # the least delay this pull grid allows
        period, match = find_period(pcm, rate)
        if period <= 0:
            return pcm
        if now < target:
            if match < 0.5 and now > target - self.margin_ms:
                return pcm  # not periodic: wait for a better block unless tight
            pcm = decelerate(pcm, period)
            self.decelerated += 1
        else:
            if not far:  # shorten only on the least lead over SHORTEN_EVERY_MS of blocks
                blocks = ceil(SHORTEN_EVERY_MS * rate / 1000 / max(1, self._frame))
                if self._since_stretch < blocks:
                    return pcm
                least = min(islice(reversed(self._bases), blocks))
                now = lead_ms(least, phase, pull, step, rate)
                if now < target:
                    return pcm
            if lead_ms(least - period * 1000 / rate, phase - period, pull, step, rate) < target:
                return pcm  # a coming packet would be due too early
            if match < (0.5 if now - target > 40.0 else 0.8):
                return pcm
            pcm = accelerate(pcm, period)
            self.accelerated += 1
        self.samples_stretched += period
        self._since_stretch = 0
        return pcm

    # -- reporting ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._take_inbox()
            out = max(1, self.samples_out)
            return {
                "target_ms": round(self.target_ms, 1),
                "delay_ms": round(self.delay_ms, 1),
                "jitter_ms": round(self.jitter_ms, 1),
                "fec_headroom_ms": round(self._target.fec_headroom_ms, 1),
                "concealed_pct": round(100 * self.samples_concealed / out, 2),
                "stretched_pct": round(100 * self.samples_stretched / out, 2),
                "late": self.late,
                "lost": self.lost,
                "fec": self.fec,
                "plc_replaced": self._concealer.replaced,
                "underruns": self.underruns,
                "dropped": self.dropped,
                "packets": self.packets,
                "waiting": len(self._packets),
            }

    def close(self) -> None:
        with self._lock:
            self._decoder.close()


def _delta(value: int, reference: int, bits: int) -> int:
    """``value - reference`` for wrapping counters of ``bits`` bits (-2**(bits-1) ..)."""
    half = 1 << (bits - 1)
    return ((value - reference + half) & ((1 << bits) - 1)) - half
