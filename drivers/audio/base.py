"""The audio interface the rest of the appliance codes against.

Audio moves as 20 ms frames of 48 kHz signed 16-bit little-endian PCM, mono unless a
backend says otherwise. Capture time is ``time.monotonic()`` of the frame's first sample,
so latency can be measured end to end on one clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

SAMPLE_RATE = 48_000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 960
BYTES_PER_SAMPLE = 2
#: How far (ms) the reader of a mic may fall behind before the oldest frames are dropped.
#: The event loop that sends the mic's audio runs late when the CPU is short; frames
#: held this long still go out (late: the receiver's jitter buffer takes the delay up
#: and gives it back), where dropped ones would be gaps heard in the room.
MIC_QUEUE_MS = 300
MIC_QUEUE_FRAMES = MIC_QUEUE_MS // FRAME_MS  # 15


@dataclass(frozen=True, slots=True)
class PcmFrame:
    """One 20 ms block of s16le PCM."""

    samples: bytes
    captured_at: float
    index: int = 0
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    #: RMS level of ``samples`` in dBFS when the mic path measured it (None: not measured)
    level_dbfs: float | None = None

    @property
    def sample_count(self) -> int:
        return len(self.samples) // (BYTES_PER_SAMPLE * self.channels)


@runtime_checkable
class MicSource(Protocol):
    """A microphone: frames are pulled with :meth:`read` (natural backpressure)."""

    async def start(self) -> None: ...

    async def read(self) -> PcmFrame:
        """The next frame; waits for it. Raises EOFError once stopped."""
        ...

    def set_gain(self, percent: int) -> None:
        """Mic gain 0-100 (hardware mixer where the card has one, else software)."""
        ...

    @property
    def stats(self) -> dict[str, int]:
        """Counters: frames, dropped, overruns, reopens."""
        ...

    async def stop(self) -> None: ...


#: A speaker's source: ``source(count, play_at)`` gives ``count`` samples (48 kHz mono)
#: to be heard from ``play_at`` (``time.monotonic()``), or None for silence. Called on
#: the speaker's own thread, paced by the device.
PlayoutSource = Callable[[int, float], "PcmFrame | None"]


@runtime_checkable
class SpeakerSink(Protocol):
    """A speaker. Playout is pulled: with a source set, the device thread asks it for
    exactly what the device wants, when it wants it. Without one, frames given to
    :meth:`write` go into a small bounded buffer (which never blocks)."""

    async def start(self) -> None: ...

    def set_source(self, source: PlayoutSource | None) -> None:
        """Pull playout from ``source`` (None: back to :meth:`write`)."""
        ...

    def write(self, frame: PcmFrame) -> None:
        """Queue a frame for playout; when the buffer is full the oldest frame is dropped."""
        ...

    def set_volume(self, percent: int) -> None: ...

    @property
    def level_dbfs(self) -> float:
        """Level of what was last played (dBFS, -inf for silence)."""
        ...

    @property
    def stats(self) -> dict[str, int]:
        """Counters: frames, dropped, underruns, reopens."""
        ...

    async def stop(self) -> None: ...
