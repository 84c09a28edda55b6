"""The room's speaker: the box's speaker playbacks on top of the members' voices, and
another sound card switched in live.

It wraps the real :class:`~drivers.audio.base.SpeakerSink`: the source the room sets
(its mix of the members' voices) is pulled as before and the playbacks are added to
each block, on the speaker's own thread. :meth:`PlaybackSpeaker.replace_sink` starts
another sink and moves the source, the volume and the playout listeners (the echo
canceller's reference) over to it before the old one stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from drivers.audio.base import PcmFrame, PlayoutSource, SpeakerSink
from drivers.lazy import lazy_module
from services.playback.feed import mix_into

if TYPE_CHECKING:
    import numpy as np

    from services.playback.feed import Samples
else:
    np = lazy_module("numpy", globals(), "np")

SpeakerMix = Callable[[int], "Samples | None"]


class PlaybackSpeaker:
    def __init__(self, sink: SpeakerSink, mix: SpeakerMix) -> None:
        self.sink = sink
        self._mix = mix
        self._source: PlayoutSource | None = None
        self._listeners: list[Any] = []
        self._volume: int | None = None
        self._started = False
        self.frames = 0

    def __repr__(self) -> str:
        return f"<PlaybackSpeaker {self.sink!r}>"

    def __getattr__(self, name: str) -> Any:  # add_playout_listener, path, ...
        return getattr(self.sink, name)

    async def start(self) -> None:
        await self.sink.start()
        self._started = True

    def add_playout_listener(self, callback: Any) -> None:
        self._listeners.append(callback)
        _listen(self.sink, callback)

    async def replace_sink(self, sink: SpeakerSink) -> bool:
        """Play on ``sink`` from now on; True when the old one was playing (a live
        switch). A sink that cannot start raises, and the old one plays on."""
        if self._volume is not None:
            sink.set_volume(self._volume)
        for callback in self._listeners:
            _listen(sink, callback)
        live = self._started
        if live:
            await sink.start()
        old, self.sink = self.sink, sink
        if self._source is not None:
            sink.set_source(self._pull)
            old.set_source(None)
        if live:
            await old.stop()
        return live

    def set_source(self, source: PlayoutSource | None) -> None:
        self._source = source
        self.sink.set_source(None if source is None else self._pull)

    def _pull(self, count: int, play_at: float) -> PcmFrame | None:
        source = self._source
        frame = source(count, play_at) if source is not None else None
        extra = self._mix(count)
        if extra is None:
            return frame
        base = None if frame is None else _mono(frame)
        mixed = mix_into(base, extra)
        assert mixed is not None
        self.frames += 1
        return PcmFrame(mixed.tobytes(), play_at if frame is None else frame.captured_at,
                        frame.index if frame is not None else self.frames)

    def write(self, frame: PcmFrame) -> None:
        self.sink.write(frame)

    def set_volume(self, percent: int) -> None:
        self._volume = percent
        self.sink.set_volume(percent)

    @property
    def level_dbfs(self) -> float:
        return self.sink.level_dbfs

    @property
    def stats(self) -> dict[str, int]:
        return self.sink.stats

    async def stop(self) -> None:
        self._started = False
        await self.sink.stop()


def _listen(sink: SpeakerSink, callback: Any) -> None:
    add = getattr(sink, "add_playout_listener", None)
    if add is not None:
        add(callback)


def _mono(frame: PcmFrame) -> Samples:
    samples = np.frombuffer(frame.samples, np.int16)
    if frame.channels == 1:
        return samples
    return samples.reshape(-1, frame.channels).mean(axis=1).astype(np.int16)
