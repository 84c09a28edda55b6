"""A :class:`MicSource` whose frames have been through the :class:`AudioProcessor`.

The room client reads it exactly like the raw microphone. Processing runs in one
worker thread (the speex calls release the GIL), so the event loop stays free.
Changes of voice activity are published as ``local-talking`` events.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

from drivers.audio.base import MicSource, PcmFrame
from drivers.base import Emit, null_emit
from services.audio.processing import AudioProcessor

log = logging.getLogger(__name__)


class ProcessedMic:
    """Wraps ``mic``: every frame read is cleaned by ``processor`` first.

    ``stop()`` stops the mic (it can be started again); ``close()`` also closes the
    processor when ``close_processor`` is true (the default).
    """

    def __init__(self, mic: MicSource, processor: AudioProcessor, *,
                 emit: Emit = null_emit, close_processor: bool = True) -> None:
        self.mic = mic
        self.processor = processor
        self._emit = emit
        self._close_processor = close_processor
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._talking = False
        self._processed = 0
        self._passed_through = 0
        self._stopped = False

    async def start(self) -> None:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="audio-dsp")
        self._stopped = False
        await self.mic.start()

    async def read(self) -> PcmFrame:
        """The next processed frame; raises EOFError once stopped."""
        frame = await self.mic.read()
        executor = self._executor
        if executor is None or self._stopped:
            raise EOFError("processed mic is stopped")
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(executor, self.processor.process, frame)
        except RuntimeError as exc:
            if self._stopped:  # the executor was shut down by stop() meanwhile
                raise EOFError("processed mic is stopped") from exc
            return self._unprocessed(frame, exc)
        except Exception as exc:
            # The mic must keep flowing: a frame that cannot be processed is sent as is.
            return self._unprocessed(frame, exc)
        self._processed += 1
        talking = self.processor.vad
        if talking != self._talking:
            self._talking = talking
            level = max(-100.0, self.processor.level_dbfs)  # -inf does not fit in JSON
            self._emit("local-talking", {"talking": talking, "level_dbfs": round(level, 1)})
        return out

    def _unprocessed(self, frame: PcmFrame, exc: Exception) -> PcmFrame:
        self._passed_through += 1
        if self._passed_through == 1 or self._passed_through % 500 == 0:
            log.warning("sending the microphone unprocessed (%d frames so far): %s",
                        self._passed_through, exc)
        return frame

    def set_gain(self, percent: int) -> None:
        self.mic.set_gain(percent)

    @property
    def talking(self) -> bool:
        """Voice activity of the last frame sent (for the talking indicator and LEDs)."""
        return self._talking

    @property
    def level_dbfs(self) -> float:
        """Level of the last frame sent, dBFS."""
        return self.processor.level_dbfs

    @property
    def stats(self) -> dict[str, int]:
        out = dict(self.mic.stats)
        out["processed"] = self._processed
        out["unprocessed"] = self._passed_through
        return out

    def set_options(self, **switches: Any) -> None:
        """Forwarded to :meth:`AudioProcessor.set_options` (``aec``, ``ns``, ``agc``)."""
        self.processor.set_options(**switches)

    async def stop(self) -> None:
        self._stopped = True
        try:
            await self.mic.stop()
        finally:
            executor, self._executor = self._executor, None
            if executor is not None:
                # Waits for a frame still in speex before the processor may be closed.
                await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)

    def close(self) -> None:
        """Release the processor (idempotent; a frame in progress finishes first)."""
        if self._close_processor:
            self.processor.close()

    def __repr__(self) -> str:
        return (f"<ProcessedMic {self.mic!r} talking={self._talking} "
                f"processed={self._processed}>")
