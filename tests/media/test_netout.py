"""Outputs that block (a silent server, a stalled file) block only their own thread:
the network output under FFmpeg's protocols (clear errors, bounded calls, abort) and
the recorder's files."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest

from services.media.mux import MuxError, PacketMuxer, StreamTemplates
from services.media.netout import NetworkOutput
from services.media.packets import EncodedPacket


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_says_so() -> None:
    out = NetworkOutput(f"rtmp://127.0.0.1:{_free_port()}/live/key", timeout=5)
    with pytest.raises(MuxError, match="cannot connect: Connection refused"):
        out.open()
    with pytest.raises(MuxError, match="closed connection"):
        out.write(b"x")
    out.close()  # nothing to close: no error


def test_only_network_protocols_are_opened(tmp_path: Path) -> None:
    target = tmp_path / "not-written"
    with pytest.raises(MuxError, match="cannot connect"):
        NetworkOutput(f"file:{target}", timeout=5).open()
    assert not target.exists()


def test_a_silent_server_is_given_up_on_and_abort_ends_a_connect_at_once() -> None:
    with socket.socket() as silent:  # the kernel completes the connection; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"rtmp://127.0.0.1:{silent.getsockname()[1]}/live/key"
        started = time.monotonic()
        with pytest.raises(MuxError, match=r"no answer for 0\.5 s"):
            NetworkOutput(url, timeout=0.5).open()
        assert time.monotonic() - started < 5

        out = NetworkOutput(url, timeout=30)
        errors: list[str] = []
        ticks = 0

        def connect() -> None:
            try:
                out.open()
            except MuxError as exc:
                errors.append(str(exc))

        thread = threading.Thread(target=connect)
        thread.start()
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # this thread runs while the other one connects
            ticks += 1
            time.sleep(0.01)
        out.abort()
        thread.join(5)
        assert not thread.is_alive()
        assert errors == ["cannot connect: stopped"]
        assert ticks > 10, ticks  # about 45 in 0.5 s; 1 when the connect held the GIL


def _h264_keyframe() -> EncodedPacket:
    import av

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 160, 120, "yuv420p"
    ctx.time_base = Fraction(1, 90_000)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency",
                   "x264-params": "repeat-headers=1"}
    frame = av.VideoFrame(160, 120, "yuv420p")
    frame.pts = 0
    frame.time_base = ctx.time_base
    [packet] = [*ctx.encode(frame), *ctx.encode(None)][:1]
    return EncodedPacket("video", bytes(packet), 0, Fraction(1, 90_000), True,
                         time.monotonic())


def test_a_file_that_blocks_blocks_only_its_writer(tmp_path: Path) -> None:
    """A recording's file that stalls (here a FIFO nobody reads yet: the open waits for
    a reader) holds up only the thread that writes it."""
    fifo, copy = tmp_path / "stalled.mkv", tmp_path / "copy.mkv"
    os.mkfifo(fifo)
    templates = StreamTemplates()
    keyframe = _h264_keyframe()
    templates.learn_video(keyframe)
    done: list[str] = []

    def record() -> None:
        muxer = PacketMuxer(str(fifo), "matroska", templates, with_audio=False)
        muxer.write(keyframe)
        muxer.close()
        done.append("closed")

    # the reader is another process, so that it comes whatever this one does
    reader = subprocess.Popen(["sh", "-c", f"sleep 1.5; exec cat {fifo} > {copy}"])
    writer = threading.Thread(target=record)
    writer.start()
    ticks, end = 0, time.monotonic() + 1.0
    while time.monotonic() < end:  # this thread runs while the writer waits
        ticks += 1
        time.sleep(0.01)
    stalled = writer.is_alive() and not done
    writer.join(10)
    assert reader.wait(10) == 0
    templates.close()
    assert stalled and done == ["closed"]
    assert copy.read_bytes().startswith(b"\x1a\x45\xdf\xa3")  # Matroska's EBML header
    assert ticks > 20, ticks  # about 90 in 1 s; 1 when the writer held the GIL
