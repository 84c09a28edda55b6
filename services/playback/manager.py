"""PlaybackManager: every playback of the box, its controls, its events.

Each playback has an id (``pb1``, ``pb2``, ...), a destination (``room``: mixed into what
the box sends, after echo cancellation so it is not cancelled; ``speaker``: mixed into
the local speaker; ``both``), a volume, and a state (``playing``, ``paused``). Several
run at once. Events: ``playback-started``, ``playback-updated`` (pause, resume,
volume) and ``playback-ended`` (``reason``: ``finished``, ``stopped``, ``left``,
``error``), each with the playback as :meth:`Playback.to_dict` gives it.

The room's mic track calls :meth:`PlaybackManager.room_mix` with every frame it sends;
the speaker thread calls :meth:`PlaybackManager.speaker_mix` for every block it plays.
``on_speaker`` is told (on the loop) whether something plays on the speaker now, so the
room runs its speaker for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from drivers.audio.base import SAMPLE_RATE
from drivers.base import Emit, null_emit
from drivers.lazy import import_off_loop, lazy_module
from services.playback.feed import PlaybackFeed, mix_into
from services.playback.source import (
    Decoder,
    PlaybackError,
    open_audio,
    resolve_file,
    speak_to_file,
)

if TYPE_CHECKING:
    import numpy as np

    from services.playback.feed import Samples
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)

Destination = Literal["room", "speaker", "both"]
DESTINATIONS: tuple[Destination, ...] = ("room", "speaker", "both")
#: How often finished playbacks are noticed (their ``playback-ended`` event).
WATCH_INTERVAL = 0.1


@dataclass(frozen=True)
class PlaybackSettings:
    """What the playback service needs to know of the box."""

    #: files are played from inside this directory only
    media_dir: Path
    #: where spoken text is rendered before it plays
    work_dir: Path
    espeak: str = "espeak-ng"
    #: the most playbacks at once
    max_playbacks: int = 4
    #: opening and reading a URL gives up after this many seconds without data
    url_timeout: float = 10.0


@dataclass
class Playback:
    id: str
    kind: Literal["file", "url", "text"]
    source: str
    destination: Destination
    volume: int
    feeds: tuple[PlaybackFeed, ...] = ()
    decoder: Decoder | None = None
    started_at: float = field(default_factory=time.monotonic)
    temp: Path | None = None

    @property
    def state(self) -> str:
        return "paused" if self.feeds and self.feeds[0].paused else "playing"

    def to_dict(self) -> dict[str, Any]:
        played = max((f.played for f in self.feeds), default=0)
        return {"id": self.id, "kind": self.kind, "source": self.source,
                "destination": self.destination, "volume": self.volume,
                "state": self.state, "position": round(played / SAMPLE_RATE, 2)}


class PlaybackManager:
    def __init__(self, settings: PlaybackSettings, emit: Emit = null_emit) -> None:
        self.settings = settings
        self._emit = emit
        self._ids = itertools.count(1)
        self._playbacks: dict[str, Playback] = {}
        # Snapshots read by the mic track and the speaker thread (replaced, never mutated).
        self._room_feeds: tuple[PlaybackFeed, ...] = ()
        self._speaker_feeds: tuple[PlaybackFeed, ...] = ()
        self._watcher: asyncio.Task[None] | None = None
        #: called with True while a playback plays on the speaker (not paused), False after
        self.on_speaker: Callable[[bool], None] | None = None
        self._speaker_busy = False

    def __repr__(self) -> str:
        return f"<PlaybackManager playing={sorted(self._playbacks)}>"

    # -- the controls -------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self._playbacks.values()]

    def get(self, playback_id: str) -> Playback:
        playback = self._playbacks.get(playback_id)
        if playback is None:
            raise PlaybackError(f"no playback {playback_id!r:.40}", "NO_SUCH_PLAYBACK")
        return playback

    async def play(self, *, file: str | None = None, url: str | None = None,
                   text: str | None = None, destination: Destination = "room",
                   volume: int = 100, voice: str | None = None) -> dict[str, Any]:
        """Start a playback of exactly one of ``file``, ``url`` and ``text``."""
        if len(self._playbacks) >= self.settings.max_playbacks:
            raise PlaybackError(f"{self.settings.max_playbacks} playbacks already run; "
                                "stop one first", "BUSY")
        await import_off_loop("numpy")  # decoding and mixing use it
        temp = None
        if file is not None:
            kind, source = "file", file
            location = str(await asyncio.to_thread(resolve_file, self.settings.media_dir, file))
        elif url is not None:
            if not url.startswith(("http://", "https://")):
                raise PlaybackError("url must be an http:// or https:// URL", "BAD_ARGUMENT")
            kind, source, location = "url", url, url
        elif text is not None:
            kind, source = "text", text
            await asyncio.to_thread(self.settings.work_dir.mkdir, parents=True, exist_ok=True)
            temp = self.settings.work_dir / f"speech-{secrets.token_hex(6)}.wav"
            await speak_to_file(text, temp, self.settings.espeak, voice)
            location = str(temp)
        else:
            raise PlaybackError("give one of file, url or text", "BAD_ARGUMENT")
        try:
            container = await asyncio.to_thread(open_audio, location,
                                                self.settings.url_timeout,
                                                "url" if kind == "url" else "file")
        except PlaybackError:
            _unlink(temp)
            raise
        playback_id = f"pb{next(self._ids)}"  # only playbacks that start get an id
        count = 2 if destination == "both" else 1
        feeds = tuple(PlaybackFeed() for _ in range(count))
        playback = Playback(playback_id, kind, source, destination, volume, feeds,  # type: ignore[arg-type]
                            temp=temp)
        self._set_volume(playback, volume)
        playback.decoder = Decoder(container, feeds, playback_id)
        self._playbacks[playback_id] = playback
        self._update_snapshots()
        playback.decoder.start()
        log.info("playback %s: %s %s -> %s", playback_id, kind, _short(source), destination)
        self._emit("playback-started", playback.to_dict())
        self._watch()
        return playback.to_dict()

    async def control(self, playback_id: str, op: str,
                      volume: int | None = None) -> dict[str, Any]:
        """``op``: ``pause``, ``resume``, ``volume`` (with ``volume``) or ``stop``."""
        playback = self.get(playback_id)
        if op == "stop":
            self._end(playback, "stopped")
            return {**playback.to_dict(), "state": "ended"}
        if op in ("pause", "resume"):
            for feed in playback.feeds:
                feed.paused = op == "pause"
            self._tell_speaker()
        elif op == "volume":
            if volume is None:
                raise PlaybackError("volume: give a volume 0-100", "BAD_ARGUMENT")
            self._set_volume(playback, volume)
        else:
            raise PlaybackError(f"unknown playback operation {op!r:.20}", "BAD_ARGUMENT")
        info = playback.to_dict()
        self._emit("playback-updated", info)
        return info

    def stop_all(self, reason: str = "stopped") -> None:
        for playback in list(self._playbacks.values()):
            self._end(playback, reason)

    @staticmethod
    def _set_volume(playback: Playback, volume: int) -> None:
        playback.volume = volume
        for feed in playback.feeds:
            feed.gain = volume / 100.0

    # -- the mixes (called by the mic track and the speaker thread) ---------------------

    def room_mix(self, samples: bytes) -> bytes:
        """A frame the box sends to the room, with every room playback mixed in."""
        feeds = self._room_feeds
        if not feeds:
            return samples
        base = np.frombuffer(samples, np.int16)
        mixed = self._mix(feeds, len(base), base)
        return samples if mixed is None else mixed.tobytes()

    def speaker_mix(self, count: int) -> Samples | None:
        """``count`` samples of every speaker playback mixed, or None (nothing plays)."""
        feeds = self._speaker_feeds
        return self._mix(feeds, count, None) if feeds else None

    @staticmethod
    def _mix(feeds: tuple[PlaybackFeed, ...], count: int, base: Samples | None
             ) -> Samples | None:
        out = base
        for feed in feeds:
            out = mix_into(out, feed.pull(count))
        return out

    def _update_snapshots(self) -> None:
        room: list[PlaybackFeed] = []
        speaker: list[PlaybackFeed] = []
        for p in self._playbacks.values():
            if p.destination == "both":
                room.append(p.feeds[0])
                speaker.append(p.feeds[1])
            else:
                (room if p.destination == "room" else speaker).append(p.feeds[0])
        self._room_feeds, self._speaker_feeds = tuple(room), tuple(speaker)
        self._tell_speaker()

    @property
    def speaker_busy(self) -> bool:
        """True while a playback plays on the speaker (one paused does not count)."""
        return any(not feed.paused for feed in self._speaker_feeds)

    def _tell_speaker(self) -> None:
        busy = self.speaker_busy
        if busy != self._speaker_busy:
            self._speaker_busy = busy
            if self.on_speaker is not None:
                self.on_speaker(busy)

    # -- ending -------------------------------------------------------------------------

    def _end(self, playback: Playback, reason: str) -> None:
        if self._playbacks.pop(playback.id, None) is None:
            return
        self._update_snapshots()
        if playback.decoder is not None:
            playback.decoder.stop()
        info = playback.to_dict()
        for feed in playback.feeds:
            feed.close()
        _unlink(playback.temp)
        error = playback.decoder.error if playback.decoder is not None else None
        if error is not None and reason == "finished":
            reason = "error"
        log.info("playback %s ended (%s)", playback.id, reason)
        self._emit("playback-ended", {**info, "state": "ended", "reason": reason,
                                      **({"error": error} if error else {})})

    def _watch(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_loop(), name="playback:watch")

    async def _watch_loop(self) -> None:
        while self._playbacks:
            await asyncio.sleep(WATCH_INTERVAL)
            for playback in list(self._playbacks.values()):
                if all(feed.drained for feed in playback.feeds):
                    self._end(playback, "finished")

    async def close(self) -> None:
        self.stop_all("stopped")
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)


def _unlink(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
