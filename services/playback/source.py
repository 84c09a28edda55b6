"""Where a playback's sound comes from, and its decoding into a feed.

A playback plays a sound file from the state dir (WAV, OGG, FLAC or MP3), an
``http(s)`` URL, or text spoken by ``espeak-ng``. Everything is decoded by PyAV
(FFmpeg) to 48 kHz mono s16 in a worker thread per playback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.audio.base import SAMPLE_RATE
from drivers.errors import EdgeroomError
from drivers.lazy import lazy_module
from services.playback.feed import PlaybackFeed

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)

#: The file types a playback accepts (by suffix).
FILE_SUFFIXES = (".wav", ".ogg", ".oga", ".opus", ".flac", ".mp3")


class PlaybackError(EdgeroomError, ValueError):
    """A playback cannot start; ``code`` is stable."""

    def __init__(self, message: str, code: str = "PLAYBACK_ERROR") -> None:
        super().__init__(message)
        self.code = code


def resolve_file(root: Path, name: str) -> Path:
    """``name`` (relative to ``root``, or absolute inside it) as an existing sound file."""
    root = root.resolve()
    path = Path(name).expanduser()
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root):
        raise PlaybackError(f"file must be inside the state dir {root}, got {name!r:.80}",
                            "BAD_ARGUMENT")
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise PlaybackError(f"file must be one of {', '.join(FILE_SUFFIXES)}, got "
                            f"{path.name!r:.80}", "BAD_ARGUMENT")
    if not path.is_file():
        raise PlaybackError(f"no such file: {name!r:.80}", "FILE_NOT_FOUND")
    return path


async def speak_to_file(text: str, out: Path, espeak: str, voice: str | None = None,
                        timeout: float = 20.0) -> Path:
    """``text`` spoken by espeak-ng into the WAV ``out`` (the text goes in on stdin)."""
    argv = [espeak, "--stdin", "-w", str(out)]
    if voice:
        argv[1:1] = ["-v", voice]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise PlaybackError(f"cannot run {espeak} for spoken text: {exc}",
                            "UNAVAILABLE") from exc
    try:
        _, err = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise PlaybackError(f"{espeak} took over {timeout:.0f} s") from None
    if proc.returncode != 0 or not await asyncio.to_thread(out.is_file):
        raise PlaybackError(f"{espeak} failed ({proc.returncode}): "
                            f"{err.decode(errors='replace').strip()[:200]}")
    return out


#: What FFmpeg may open for each kind of source: a URL can never reach a local file
#: (through a playlist or a redirect), a file never the network.
PROTOCOLS = {"file": "file", "url": "http,https,tcp,tls"}


def open_audio(location: str, timeout: float, kind: str = "file") -> Any:
    """A PyAV container with an audio stream (blocking: call it in a thread)."""
    import av

    try:
        container = av.open(location, timeout=timeout,
                            options={"protocol_whitelist": PROTOCOLS[kind]})
    except (av.FFmpegError, OSError) as exc:
        raise PlaybackError(f"cannot open {_short(location)}: {exc}") from exc
    if not container.streams.audio:
        container.close()
        raise PlaybackError(f"{_short(location)} has no audio")
    return container


def _short(location: str) -> str:
    return location if len(location) <= 80 else location[:77] + "..."


class Decoder:
    """Decodes one opened container into every feed, in its own thread."""

    def __init__(self, container: Any, feeds: Sequence[PlaybackFeed], name: str) -> None:
        self._container = container
        self._feeds = tuple(feeds)
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"playback-{name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (it does within half a second; nothing waits for it)."""
        self._stop.set()

    def _push(self, samples: np.ndarray[Any, Any]) -> bool:
        data = np.ascontiguousarray(samples.reshape(-1), dtype=np.int16)
        return all(feed.push(data) for feed in self._feeds) and not self._stop.is_set()

    def _run(self) -> None:
        import av

        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            stream = self._container.streams.audio[0]
            for frame in self._container.decode(stream):
                for out in resampler.resample(frame):
                    if not self._push(out.to_ndarray()):
                        return
            for out in resampler.resample(None):
                if not self._push(out.to_ndarray()):
                    return
        except Exception as exc:  # a broken file or a dropped stream ends the playback
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("playback: decoding stopped: %s", self.error)
        finally:
            for feed in self._feeds:
                feed.finish()
            try:
                self._container.close()
            except Exception:  # closing a half-read network stream may fail too
                log.debug("playback: closing the container failed", exc_info=True)
