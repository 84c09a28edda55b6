"""A native publisher doing the box's whole publishing job: the ``ffmpeg`` CLI.

The publish rows compare the box's whole process (camera, mic, Opus, RTP, SRTP, RTCP,
ICE and DTLS upkeep, sockets) with the ``ffmpeg`` CLI encoding the same frames to
``/dev/null``: an encoder alone. This reference does what a publisher does, in C: it
reads the same 900 frames at the camera's rate (``-re``), encodes them with the room's
settings (x264 as :func:`bench.bench_encode._ffmpeg`, or libvpx as a VP8 room's encode),
encodes a 440 Hz tone at 48 kHz as the mic's Opus (mono, 32 kbps, 20 ms, complexity 9,
in-band FEC), packetizes both as RTP, protects them with SRTP
(AES_CM_128_HMAC_SHA1_80, as DTLS-SRTP negotiates with Janus) and sends them over UDP,
with its RTCP sender reports, to a sink on loopback that counts what arrives. What it
does not do: ICE consent checks, DTLS, receiving RTCP or NACKs, and drawing the frames
(they are rendered before it starts).

``publish_cpu(planes, vp8)`` returns its CPU seconds, the packets the sink got, and its
exit code.
"""

from __future__ import annotations

import base64
import os
import resource
import select
import socket
import subprocess
import threading
import time
from typing import Any

from bench import bench_encode as be

TONE_HZ = 440
OPUS_ARGS = ["-c:a", "libopus", "-b:a", "32k", "-ac", "1", "-ar", "48000",
             "-application", "voip", "-frame_duration", "20", "-compression_level", "9",
             "-fec", "1", "-packet_loss", "0"]
SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"
#: RTP packets of at most this many bytes, as the box's packetizer makes them
PACKET_BYTES = 1200
#: datagrams the sink keeps of each stream, to check what was sent
KEEP = 5


class _Sink:
    """UDP sockets on loopback (RTP port and the RTCP port after it) that count
    datagrams until stopped."""

    def __init__(self, streams: int) -> None:
        self.sockets: list[socket.socket] = []
        self.ports: list[int] = []
        for _ in range(streams):
            rtp, rtcp = _port_pair()
            self.sockets += [rtp, rtcp]
            self.ports.append(rtp.getsockname()[1])
        self.packets = [0] * len(self.sockets)
        self.bytes = [0] * len(self.sockets)
        #: the first datagrams of each socket, as they came
        self.first: list[list[bytes]] = [[] for _ in self.sockets]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="native-sink", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self.sockets, [], [], 0.2)
            for sock in ready:
                index = self.sockets.index(sock)
                data = sock.recv(65536)
                self.bytes[index] += len(data)
                self.packets[index] += 1
                if len(self.first[index]) < KEEP:
                    self.first[index].append(data)

    def close(self) -> list[dict[str, Any]]:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()
        return [{"rtp_packets": self.packets[i], "rtp_bytes": self.bytes[i],
                 "rtcp_packets": self.packets[i + 1], "first": self.first[i]}
                for i in range(0, len(self.sockets), 2)]


def _port_pair() -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on loopback at an even port and the one after it."""
    for _ in range(100):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", port + 1))
                return rtp, rtcp
            except OSError:
                rtcp.close()
        rtp.close()
    raise RuntimeError("no free pair of UDP ports on loopback")


def video_args(vp8: bool) -> list[str]:
    """The room's video encode, as the CLI's codec options."""
    if vp8:
        return be.vp8_cli_args()
    return be.x264_cli_args()


def publish_cpu(planes: list[bytes], vp8: bool = False, frames: int = be.FRAMES,
                keep: bool = False) -> dict[str, Any]:
    """The CLI publishing ``frames`` frames (cycling through ``planes``) and as long a
    tone as SRTP to a loopback sink (see the module): its CPU seconds, what the sink
    received (with ``keep``, the first datagrams of each stream and the SRTP key), its
    exit code."""
    key = base64.b64encode(os.urandom(30)).decode()
    srtp = ["-srtp_out_suite", SRTP_SUITE, "-srtp_out_params", key]
    sink = _Sink(2)
    video_port, audio_port = sink.ports
    seconds = frames / be.FPS
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
           "-re", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{be.WIDTH}x{be.HEIGHT}",
           "-r", str(be.FPS), "-i", "pipe:0",
           "-re", "-f", "lavfi", "-t", f"{seconds:g}",
           "-i", f"sine=frequency={TONE_HZ}:sample_rate=48000",
           "-map", "0:v", *video_args(vp8), "-packetsize", str(PACKET_BYTES),
           "-f", "rtp", *srtp, f"srtp://127.0.0.1:{video_port}",
           "-map", "1:a", *OPUS_ARGS, "-packetsize", str(PACKET_BYTES),
           "-f", "rtp", *srtp, f"srtp://127.0.0.1:{audio_port}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for n in range(frames):
            proc.stdin.write(planes[n % len(planes)])
        proc.stdin.close()
        proc.wait(seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        received = sink.close()
        if not keep:
            for stream in received:
                stream.pop("first")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_s": round(cpu, 3), "wall_s": round(time.monotonic() - wall0, 3),
            "returncode": proc.returncode, "video": received[0], "audio": received[1],
            "frames": frames, **({"key": key} if keep else {}),
            "stderr": proc.stderr.read().decode(errors="replace")[-400:]}


def sent_everything(result: dict[str, Any]) -> bool:
    """Whether the run sent all of both: a video packet per frame at least, and at least
    95 % of the tone's 20 ms packets."""
    seconds = result["frames"] / be.FPS
    return (result["returncode"] == 0
            and result["video"]["rtp_packets"] >= result["frames"]
            and result["audio"]["rtp_packets"] >= 0.95 * seconds * 50)


if __name__ == "__main__":
    import json
    import sys

    frames = be.render_frames()
    print(json.dumps(publish_cpu(frames, vp8="vp8" in sys.argv[1:]), indent=2))
