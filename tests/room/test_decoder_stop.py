"""A receiver's decoder thread is stopped without the event loop waiting for it.

aiortc stops a receiver's decoder thread on an RTCP BYE, on a disconnect and on close,
all on the event loop, and its stop joins the thread: the loop (and the room's audio)
waits for the frame being decoded. These drive aiortc's own receiver and decoder
worker; the decode is made slow (2 s) so that a wait shows.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters, rtcrtpreceiver
from aiortc.rtp import RtcpByePacket

from services.room import decoders

DECODE_S = 2.0
T = 10.0


class SlowDecoder:
    """Takes :data:`DECODE_S` for each frame, and says when it started one."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def decode(self, encoded_frame: Any) -> list[Any]:
        self.started.set()
        time.sleep(DECODE_S)
        return []


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowDecoder]:
    decoders.install()
    decoder = SlowDecoder()
    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", lambda codec: decoder)
    yield decoder


async def decoding_receiver(pc: RTCPeerConnection, decoder: SlowDecoder,
                            frames: asyncio.Queue[Any]) -> Any:
    """A video receiver whose aiortc decoder thread (started as ``receive()`` starts it,
    handing its frames to ``frames``) is in the middle of a frame."""
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    thread = threading.Thread(target=rtcrtpreceiver.decoder_worker, name="video-decoder",
                              args=(asyncio.get_running_loop(),
                                    receiver._RTCRtpReceiver__decoder_queue,
                                    frames, threading.Event()))
    receiver._RTCRtpReceiver__decoder_thread = thread
    thread.start()
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    receiver._RTCRtpReceiver__decoder_queue.put((codec, b"frame"))
    assert await asyncio.to_thread(decoder.started.wait, T)
    return receiver


async def test_a_bye_does_not_wait_for_the_frame_being_decoded(slow: SlowDecoder) -> None:
    pc, frames = RTCPeerConnection(), asyncio.Queue[Any]()
    receiver = await decoding_receiver(pc, slow, frames)
    thread = receiver._RTCRtpReceiver__decoder_thread
    began = time.monotonic()
    await receiver._handle_rtcp_packet(RtcpByePacket(sources=[1234]))
    assert time.monotonic() - began < DECODE_S / 4  # joined: the whole decode
    assert receiver._RTCRtpReceiver__decoder_thread is None
    assert thread.is_alive()  # still decoding; it ends by itself
    # the track is told it ended once the frame is done, and the thread ends
    assert await asyncio.wait_for(frames.get(), T) is None
    await asyncio.to_thread(thread.join, T)
    assert not thread.is_alive()
    await pc.close()


async def test_a_disconnect_does_not_wait_for_the_frame_being_decoded(
        slow: SlowDecoder) -> None:
    pc, frames = RTCPeerConnection(), asyncio.Queue[Any]()
    receiver = await decoding_receiver(pc, slow, frames)
    thread = receiver._RTCRtpReceiver__decoder_thread
    began = time.monotonic()
    receiver._handle_disconnect()
    assert time.monotonic() - began < DECODE_S / 4
    await asyncio.to_thread(thread.join, T)
    assert not thread.is_alive()
    await pc.close()


def test_an_unknown_stop_is_left_alone(monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """aiortc's stop in another shape is kept, with a warning, not replaced blindly."""
    class Receiver:
        def _RTCRtpReceiver__stop_decoder(self) -> None:
            pass

    monkeypatch.setattr(rtcrtpreceiver, "RTCRtpReceiver", Receiver)
    original = Receiver._RTCRtpReceiver__stop_decoder
    decoders.install()
    assert Receiver._RTCRtpReceiver__stop_decoder is original
    assert "stops its decoder differently" in caplog.text


def test_a_decoder_thread_that_outlives_its_loop_ends_quietly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread not waited for can finish a frame after the event loop has closed (at
    shutdown): its frames and its end are dropped, with no exception in the thread and
    no coroutine left never awaited."""
    decoders.install()
    go, started = threading.Event(), threading.Event()

    class HeldDecoder:
        def decode(self, encoded_frame: Any) -> list[Any]:
            started.set()
            go.wait(T)
            return ["a frame"]

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", lambda codec: HeldDecoder())
    failures: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    loop = asyncio.new_event_loop()
    frames: asyncio.Queue[Any] = asyncio.Queue()
    tasks: queue.Queue[Any] = queue.Queue()
    thread = threading.Thread(target=rtcrtpreceiver.decoder_worker,
                              args=(loop, tasks, frames, threading.Event()))
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread.start()
        tasks.put((codec, b"frame"))
        assert started.wait(T)
        tasks.put(None)  # the receiver stopped; then the loop closes
        loop.close()
        go.set()
        thread.join(T)
        gc.collect()
    assert not thread.is_alive()
    assert failures == []
    assert [w for w in caught if "never awaited" in str(w.message)] == []
    assert frames.empty()
