"""The members' video is decoded with one thread per stream.

aiortc opens each received stream's decoder (PyAV's H.264 decoder or libvpx's VP8) with
FFmpeg's default thread count, 0: as many threads as the machine has cores, for every
stream. Each receiver already decodes in its own thread, and a 640x480 stream is a small
part of a core for one thread, so the extra threads buy nothing on the appliance and cost
their buffers and a malloc arena each. :func:`install` makes aiortc's receivers open
their decoders with :data:`DECODER_THREADS`.
"""

from __future__ import annotations

from typing import Any

#: Threads of one received stream's video decoder (0: FFmpeg's default, one a core).
DECODER_THREADS = 1
_WRAPPED = "_edgeroom_decoder_threads"


def limit_threads(decoder: Any, threads: int | None = None) -> Any:
    """``decoder`` (an aiortc decoder) with its codec set to ``threads`` threads
    (:data:`DECODER_THREADS` when not given), if it wraps a PyAV codec context that is
    not open yet."""
    if threads is None:
        threads = DECODER_THREADS
    codec = getattr(decoder, "codec", None)
    if codec is not None and hasattr(codec, "thread_count") and not codec.is_open:
        codec.thread_count = threads
    return decoder


def install() -> None:
    """Make aiortc's receivers open their decoders through :func:`limit_threads`
    (idempotent)."""
    import aiortc.rtcrtpreceiver as receiver

    original = receiver.get_decoder
    if getattr(original, _WRAPPED, False):
        return

    def get_decoder(codec: Any) -> Any:
        return limit_threads(original(codec))

    setattr(get_decoder, _WRAPPED, True)
    receiver.get_decoder = get_decoder
