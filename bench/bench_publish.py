"""Publishing 640x480@30 into a room: process CPU (H.264 and VP8 rooms), and video
glass-to-glass.

Ours: an ``edgeroom run --sim`` process publishes its sim camera (640x480@30, the
shared x264 encoder) and mic into a room for :data:`SECONDS` s; its CPU time (all
threads, from ``/proc``) is divided by the CPU time the ``ffmpeg`` CLI takes to encode
the same number of frames with the same x264 settings (``bench.bench_encode``); the
same again in a VP8-only room, against the CLI with our libvpx settings. The sim
camera draws every frame in the process, which a real camera does not: that share (the
CPU of its drawing thread, ``sim-camera``, over the same 30 s) is given in the notes.
When the shared encoder reads the sim camera from its frame thread (``video-camera``,
:mod:`services.media.pump`), that thread draws the frames and also sends the video's
RTP, so the notes give its CPU as well.

Video: an in-process listener in the same room decodes the frame-number strip
(``drivers.camera.strip``) of every frame it receives; the stamp is the capture time
(low 32 bits of monotonic ms), the same clock in every process of this machine. The
reference is a plain aiortc publisher (:mod:`bench.plain_aiortc`: aiortc's own peer
connection and H.264 encoder fed the same sim camera at 640x480@30) received by a
listener the same way, right after ours (run side by side, the two publishers and two
decoders overload a 2-core machine).

A third reference does the box's whole publishing job natively
(:mod:`bench.native_publish`): the ``ffmpeg`` CLI paced at the camera's rate, encoding
the same frames and a tone as Opus, sending both as SRTP over UDP. The gap to it is
what Python costs, rather than what publishing costs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from bench.env import BenchRoom, percentile, wait_until
from bench.proccpu import ThreadWindow, proc_cpu_seconds, wakeups_note
from bench.report import Row
from tests.harness.api_client import ApiClient
from tests.harness.appliance import ApplianceProcess
from tests.harness.peers import RoomPeer

log = logging.getLogger(__name__)

SECONDS = 30.0
REF_SECONDS = 15.0
WARMUP_S = 3.0
WIDTH, HEIGHT, FPS = 640, 480, 30


class VideoWatch:
    """Collects (frame number, latency ms) per member from decoded frames."""

    def __init__(self) -> None:
        self.frames: dict[str, list[tuple[int, float, float]]] = {}
        self._lock = threading.Lock()

    def __call__(self, member_id: str, frame: Any) -> None:
        from drivers.camera.strip import decode_strip

        now = time.monotonic()
        info = decode_strip(frame)
        if info is None:
            return
        with self._lock:
            self.frames.setdefault(member_id, []).append(
                (info.frame_number, float(info.age_ms(now)), now))

    def take(self, since: float) -> dict[str, list[tuple[int, float, float]]]:
        with self._lock:
            return {k: [f for f in v if f[2] >= since] for k, v in self.frames.items()}


class DecodeErrors(logging.Handler):
    """Counts the frames a receiver could not decode (its decoder thread logs each one:
    the appliance's, ``services.room.decoders``, or aiortc's own)."""

    LOGGERS = ("aiortc.rtcrtpreceiver", "services.room.decoders")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self._loggers = [logging.getLogger(name) for name in self.LOGGERS]
        self._saved = [(lg.level, lg.propagate) for lg in self._loggers]

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage():
            self.count += 1

    def __enter__(self) -> DecodeErrors:
        for logger in self._loggers:
            logger.addHandler(self)
            logger.setLevel(logging.WARNING)
            logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        for logger, (level, propagate) in zip(self._loggers, self._saved, strict=True):
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate


def summarize(frames: list[tuple[int, float, float]]) -> dict[str, Any]:
    if not frames:
        return {"frames": 0}
    numbers = [n for n, _, _ in frames]
    span = max(numbers) - min(numbers) + 1
    unique = len(set(numbers))
    lat = [x for _, x, _ in frames]
    return {"frames": len(frames), "span": span, "lost_pct": 100.0 * (span - unique) / span,
            "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
            "fps": unique / max(1e-9, frames[-1][2] - frames[0][2])}


def _appliance_config(room: int) -> dict[str, dict[str, Any]]:
    return {"room": {"room": room, "display_name": "ours", "auto_join": True},
            "video": {"enabled": True, "receive": False, "width": WIDTH, "height": HEIGHT,
                      "fps": FPS, "backend": "sim"},
            "audio": {"backend": "sim"},
            # the page, for the encoder's own counters (read outside the window)
            "web": {"listen": "0.0.0.0:8080"}}


def _encode_cpu(api: ApiClient) -> float:
    """CPU seconds the appliance's video encodes have spent in the encoder's own calls
    (``encode_cpu_seconds`` of ``/api/status``, timed in the encoding thread)."""
    status, body = api.call("GET", "/api/status")
    assert status == 200, body
    return float(body["media"]["encoder"]["encode_cpu_seconds"])


def _listener(env: BenchRoom, room: int, watch: VideoWatch) -> RoomPeer:
    peer = env.peer("watch", room, tone=None, role="listener")
    peer.session._on_remote_video = watch
    peer.call(lambda s: s.join())
    return peer


def _video(watch: VideoWatch, since: float) -> dict[str, Any]:
    frames = watch.take(since)
    return summarize(max(frames.values(), key=len) if frames else [])


def ours(env: BenchRoom, vp8: bool = False) -> dict[str, Any]:
    room = env.new_vp8_room() if vp8 else env.new_room()
    watch = VideoWatch()
    listener = _listener(env, room, watch)
    app: ApplianceProcess = env.appliance("pub", _appliance_config(room))
    wait_until(lambda: watch.frames, 60, "video from the appliance")
    api = ApiClient(env.network, app, f"{app.host.name}-api")
    api.login()  # its password hash before the window
    time.sleep(WARMUP_S)
    assert app.pid is not None
    with DecodeErrors() as errors:
        encoding = _encode_cpu(api)
        c0, t0 = proc_cpu_seconds(app.pid), time.monotonic()
        window = ThreadWindow(app.pid)
        time.sleep(SECONDS)
        threads, woke = window.end()
        cpu, wall = proc_cpu_seconds(app.pid) - c0, time.monotonic() - t0
        encoding = _encode_cpu(api) - encoding
        drawing = threads.get("sim-camera", 0.0)
        frame_thread = threads.get("video-camera", 0.0)
    api.close()
    alive = app.alive()
    # the audio-first budget lowers the frame rate when the audio leaves late (a CPU that
    # does not keep up): the CPU figure is then for fewer frames
    budget_steps = app.log_text().count("video budget:")
    app.stop()
    env.drop_peer(listener)
    return {"cpu_s": cpu, "wall_s": wall, "encoder_calls_cpu_s": encoding,
            "sim_camera_thread_cpu_s": drawing,
            "frame_thread_cpu_s": frame_thread, "threads_cpu_s": threads,
            "threads_wakeups_per_s": woke, "video": _video(watch, t0), "alive": alive,
            "decode_errors": errors.count, "budget_steps": budget_steps}


def plain_aiortc(env: BenchRoom) -> dict[str, Any]:
    from bench import plain_aiortc as plain

    room = env.new_room()
    watch = VideoWatch()
    listener = _listener(env, room, watch)
    client = plain.launch(env.host("aiortc"), env.janus.url, room, 120, str(WIDTH),
                          str(HEIGHT), str(FPS), "tone:440")
    try:
        wait_until(lambda: watch.frames or client.poll() is not None, 60,
                   "video from the plain aiortc publisher")
        if client.poll() is not None:
            raise RuntimeError(f"the plain aiortc publisher exited: {client.stdout.read()}")
        time.sleep(WARMUP_S)
        with DecodeErrors() as errors:
            t0 = time.monotonic()
            time.sleep(REF_SECONDS)
    finally:
        client.terminate()
        client.wait(15)
    env.drop_peer(listener)
    return {"video": _video(watch, t0), "decode_errors": errors.count}


def sim_render_cpu(frames: int) -> float:
    """CPU seconds the sim camera spends drawing ``frames`` frames (in this process)."""
    from drivers.camera.sim import PatternRenderer

    renderer = PatternRenderer(WIDTH, HEIGHT)
    c0 = time.process_time()
    for n in range(frames):
        renderer.render(n, time.monotonic())
    return time.process_time() - c0


def ffmpeg_cpu(vp8: bool = False, paced: bool = False) -> dict[str, Any]:
    """The ``ffmpeg`` CLI's CPU for the same frames (the lower of two runs; one when
    ``paced``, which takes the 30 s of a live camera)."""
    from bench import bench_encode

    planes = bench_encode.render_frames()
    encode = _ffmpeg_vp8 if vp8 else bench_encode._ffmpeg
    runs = [encode(planes, paced) for _ in range(1 if paced else 2)]
    return min(runs, key=lambda r: float(r["cpu_s"]))


def _ffmpeg_vp8(planes: list[bytes], paced: bool = False) -> dict[str, Any]:
    """The ``ffmpeg`` CLI encoding the frames with libvpx as a VP8 room's encode does
    (``services.media.codec_options.vp8_options``: real time, error resilient, CBR)."""
    import resource
    import subprocess

    from bench import bench_encode as be

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", *(["-re"] if paced else []),
           "-f", "rawvideo",
           "-pix_fmt", "yuv420p", "-s", f"{be.WIDTH}x{be.HEIGHT}", "-r", str(be.FPS),
           "-i", "-", *be.vp8_cli_args(), "-f", "ivf", "-y", "/dev/null"]
    wall0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for n in range(be.FRAMES):
        proc.stdin.write(planes[n % len(planes)])
    proc.stdin.close()
    proc.wait(120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_s": round(cpu, 3), "wall_s": round(time.monotonic() - wall0, 3),
            "returncode": proc.returncode}


def measure() -> dict[str, Any]:
    with BenchRoom("bp") as env:
        got = {"ours": ours(env), "ours_vp8": ours(env, vp8=True),
               "aiortc": plain_aiortc(env)}
    from bench import bench_encode, native_publish

    frames = round(SECONDS * FPS)
    planes = bench_encode.render_frames()
    return {**got, "ffmpeg": ffmpeg_cpu(), "ffmpeg_vp8": ffmpeg_cpu(vp8=True),
            "ffmpeg_paced": ffmpeg_cpu(paced=True),
            "ffmpeg_vp8_paced": ffmpeg_cpu(vp8=True, paced=True),
            "ffmpeg_publish": native_publish.publish_cpu(planes),
            "ffmpeg_vp8_publish": native_publish.publish_cpu(planes, vp8=True),
            "sim_render_cpu_s": sim_render_cpu(frames), "frames": frames}


def _throttled(got: dict[str, Any]) -> str:
    steps = got.get("budget_steps", 0)
    return f"; video budget stepped {steps}x (CPU short: fewer frames)" if steps else ""


def _native_note(got: dict[str, Any]) -> str:
    from bench.native_publish import sent_everything

    mbps = got["video"]["rtp_bytes"] * 8 / max(1e-9, got["wall_s"]) / 1e6
    sent = (f"it sent {got['video']['rtp_packets']} video and {got['audio']['rtp_packets']} "
            f"audio packets ({mbps:.2f} Mbps of video)")
    if not sent_everything(got):
        return f"NOT A VALID REFERENCE: exit {got['returncode']}, {sent}: {got['stderr']}"
    return (f"the same job in C, paced: frames, Opus, RTP, SRTP, RTCP SRs, UDP; no ICE "
            f"or DTLS upkeep, no drawing; {sent}")


def run() -> list[Row]:
    m = measure()
    o, a, ff = m["ours"], m["aiortc"], m["ffmpeg"]
    ov, av_ = o["video"], a["video"]
    drawing = o["sim_camera_thread_cpu_s"]
    own_thread = f"; a sim-camera thread {drawing:.2f} s" if drawing else ""
    calls = o.get("encoder_calls_cpu_s", 0.0)
    cpu_note = (f"whole process incl. audio; the encoder's own calls {calls:.2f} s of it, "
                f"everything else {o['cpu_s'] - calls:.2f} s; frame thread (reads and draws "
                f"the sim camera, encodes, sends the RTP) "
                f"{o.get('frame_thread_cpu_s', 0.0):.2f} s, the drawing in it "
                f"({m['sim_render_cpu_s']:.2f} s for the frames in a tight loop, more "
                f"between encodes, whose caches it finds cold){own_thread}; "
                f"received {ov.get('fps', 0):.1f} fps{_throttled(o)}{wakeups_note(o)}")
    v, ffv = m["ours_vp8"], m["ffmpeg_vp8"]
    return [
        Row("publish", "process CPU, 30 s of 640x480@30 into a room", o["cpu_s"], "s",
            ff["cpu_s"], "ffmpeg CLI, same frames", notes=cpu_note, extra=m),
        Row("publish", "process CPU, the same into a VP8 room", v["cpu_s"], "s",
            ffv["cpu_s"], "ffmpeg CLI libvpx, same frames",
            notes=f"whole process incl. audio; the encoder's own calls "
                  f"{v.get('encoder_calls_cpu_s', 0.0):.2f} s of it, everything else "
                  f"{v['cpu_s'] - v.get('encoder_calls_cpu_s', 0.0):.2f} s; "
                  f"received {v['video'].get('fps', 0):.1f} fps"
                  f"{_throttled(v)}{wakeups_note(v)}"),
        Row("publish", "process CPU, H.264 room, against a paced encode", o["cpu_s"], "s",
            m["ffmpeg_paced"]["cpu_s"], "ffmpeg CLI -re (30 fps, as a camera)",
            notes="the same frames fed at the frame rate: an encoder that waits for each "
                  "frame pays cold caches and wake-ups, as ours does"),
        Row("publish", "process CPU, VP8 room, against a paced encode", v["cpu_s"], "s",
            m["ffmpeg_vp8_paced"]["cpu_s"], "ffmpeg CLI libvpx -re (30 fps)"),
        Row("publish", "process CPU, H.264 room, against a native publisher", o["cpu_s"],
            "s", m["ffmpeg_publish"]["cpu_s"], "ffmpeg CLI -re: x264 + Opus tone, SRTP out",
            notes=_native_note(m["ffmpeg_publish"])),
        Row("publish", "process CPU, VP8 room, against a native publisher", v["cpu_s"], "s",
            m["ffmpeg_vp8_publish"]["cpu_s"], "ffmpeg CLI -re: libvpx + Opus tone, SRTP out",
            notes=_native_note(m["ffmpeg_vp8_publish"])),
        Row("video", "glass-to-glass p50", ov.get("p50_ms"), "ms", av_.get("p50_ms"),
            "plain aiortc", notes=f"ours {ov.get('fps', 0):.1f} fps, "
            f"aiortc {av_.get('fps', 0):.1f} fps"),
        Row("video", "glass-to-glass p95", ov.get("p95_ms"), "ms", av_.get("p95_ms"),
            "plain aiortc"),
        Row("video", "frames lost", ov.get("lost_pct"), "%", av_.get("lost_pct"),
            "plain aiortc", notes=f"gaps in frame numbers; undecodable frames: ours "
            f"{o['decode_errors']}, aiortc {a['decode_errors']}"),
    ]


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(), indent=2, default=str))
