"""The Pi budget: publishing under a CPU quota, beside a plain aiortc publisher.

One publisher process at a time sits in a child cgroup of the v1 ``cpu`` controller
(:mod:`bench.cgroup`, period 10 ms) and publishes 640x480@30 video (the sim camera) and
its mic (a 440 Hz tone with timing marks, :mod:`bench.marks`) into a room with one other
member. That member (in this process, in its own namespace, not limited) sends an 880 Hz
tone back, decodes the video and plays the audio into a sim speaker. For each quota in
:data:`QUOTAS` (share of one core):

- fps: distinct frame numbers (the camera's strip) decoded per second at the member;
- continuity: share of the member's 20 ms windows in which the 440 Hz tone is within
  6 dB of its clean level (measured on the same link with no quota, before it is set);
- mouth-to-ear p50: each mark's capture time (the sim mic's clock, on the shared
  monotonic clock) to when the member's speaker played it.

Ours is ``edgeroom run --sim``; the reference is :mod:`bench.plain_aiortc` (aiortc's
own peer connections, encoders and RTP path, with Janus signalling of its own and none
of the appliance's room code), run right after it under the same quota
(side by side they would share the 2-core machine's other core). Each publisher starts
and joins without a quota; the quota is set once its video reaches the member, and
measuring starts :data:`SETTLE_S` later. The headline row is the smallest quota at
which a publisher still delivers 30 fps (29 or more) and continuous audio (99% or more).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench import marks, plain_aiortc
from bench.bench_publish import summarize
from bench.cgroup import CpuQuota
from bench.env import BenchRoom, percentile, wait_until
from bench.proccpu import ThreadWindow, proc_cpu_seconds, wakeups_note
from bench.report import Row
from drivers.audio.sim import TONE_AMPLITUDE
from tests.harness.api_client import ApiClient
from tests.harness.appliance import ApplianceProcess
from tests.harness.audio import continuity, tone_levels
from tests.harness.lifetime import child_setup

log = logging.getLogger(__name__)

QUOTAS: tuple[int, ...] = (100, 50, 25, 15, 10)
#: Only these quotas (e.g. ``EDGEROOM_BENCH_QUOTAS=25,15,10``), for a shorter run.
CHOSEN = tuple(int(x) for x in os.environ.get("EDGEROOM_BENCH_QUOTAS", "").split(",")
               if x.strip()) or QUOTAS
SECONDS = float(os.environ.get("EDGEROOM_BENCH_QUOTA_SECONDS", "30"))
#: A squeeze that passes, before the quota (e.g. ``EDGEROOM_BENCH_QUOTA_SQUEEZE=10:3``: 10 %
#: of a core for 3 s): how the audio-first budget comes back from a step it no longer
#: needs. Off by default (the rows of ``make bench`` set the quota at once).
SQUEEZE = tuple(float(x) for x in os.environ.get("EDGEROOM_BENCH_QUOTA_SQUEEZE",
                                                 "").split(":") if x.strip())
SETTLE_S = 3.0
CLEAN_S = 3.0
WIDTH, HEIGHT, FPS = 640, 480, 30
MIC_ORIGIN = re.compile(r"sim mic: .* \(frame (\d+) at ([0-9.]+) monotonic\)")
BUDGET_STEP = re.compile(r"video budget: .* -> ")
#: What tore the publisher down and built it again, if anything did (state changes of the
#: room, the Janus connection and the peer connections, and the mic opening).
ROOM_CHANGE = re.compile(r"room: |janus|peer connection: |keepalive|room mic: |sim mic: "
                         r"|subsystem|Consent|WARNING|ERROR")
FULL_FPS = 29.0
CONTINUOUS_PCT = 99.0
#: The member, Janus and the network (the instrument) run at this nice value, so the
#: machine's other load disturbs the measurement less; the publishers run at 0.
INSTRUMENT_NICE = int(os.environ.get("EDGEROOM_BENCH_QUOTA_NICE", "-10"))


@contextlib.contextmanager
def _normal_priority() -> Iterator[None]:
    """Processes started inside inherit nice 0 (not the instrument's)."""
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, 0)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, mine)


class Watch:
    """(frame number, glass-to-glass ms, arrival, width) of every decoded frame."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, float, float, int]] = []
        self._lock = threading.Lock()

    def __call__(self, member_id: str, frame: Any) -> None:
        from drivers.camera.strip import decode_strip

        now = time.monotonic()
        info = decode_strip(frame)
        if info is not None:
            with self._lock:
                self.frames.append((info.frame_number, float(info.age_ms(now)), now,
                                    int(frame.width)))

    def between(self, t0: float, t1: float) -> list[tuple[int, float, float, int]]:
        with self._lock:
            return [f for f in self.frames if t0 <= f[2] < t1]


#: Another source tree of the appliance to measure beside this one, as "before" (e.g.
#: an export of an earlier commit); not set in ``make bench``.
BEFORE_TREE = os.environ.get("EDGEROOM_BENCH_QUOTA_BEFORE", "")
#: The publishers measured, in this order (e.g. ``EDGEROOM_BENCH_QUOTA_KINDS=ours`` while
#: trying a change; the reference belongs in every reported run).
KINDS = tuple(os.environ.get("EDGEROOM_BENCH_QUOTA_KINDS", "").split(",")) if os.environ.get(
    "EDGEROOM_BENCH_QUOTA_KINDS") else ("ours", *(("before",) if BEFORE_TREE else ()), "aiortc")


class TreeAppliance(ApplianceProcess):
    """``python -m device run --sim`` from another source tree."""

    def __init__(self, tree: Path, *args: Any) -> None:
        super().__init__(*args)
        self.tree = tree

    def start(self) -> None:
        env = {**os.environ, **self.unit_env(self.tree), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": str(self.tree)}
        with self.log_path.open("ab") as logf:
            self.proc = subprocess.Popen(
                [*self.host.exec_prefix(), sys.executable, "-m", "device", "run", "--sim",
                 "--config", str(self.config_path), "--state-dir", str(self.state_dir)],
                stdout=logf, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                preexec_fn=child_setup())


class Publisher:
    """One publisher process: ours (an appliance), ours from :data:`BEFORE_TREE`
    ("before"), or the plain aiortc member."""

    def __init__(self, env: BenchRoom, kind: str, room: int, wav: Path) -> None:
        self.kind = kind
        self._client: subprocess.Popen[str] | None = None
        self._app: Any = None
        self._lines: list[str] = []
        config = {"room": {"room": room, "display_name": kind, "auto_join": True,
                           "server": env.janus.url},
                  "video": {"enabled": True, "receive": False, "width": WIDTH,
                            "height": HEIGHT, "fps": FPS, "backend": "sim"},
                  "audio": {"backend": "sim"}, "sim": {"mic": str(wav)},
                  "web": {"listen": "0.0.0.0:8080"}}
        if kind in ("ours", "before"):
            if kind == "ours":
                self._app = env.appliance("q", config)
            else:
                host = env.host("qb")
                self._app = TreeAppliance(Path(BEFORE_TREE), host, env.workdir / host.name,
                                          config)
                env.appliances.append(self._app)
                self._app.start()
            self.pid = self._app.pid
        else:
            host = env.host("qa")
            self._client = plain_aiortc.launch(host, env.janus.url, room, 3600, str(WIDTH),
                                               str(HEIGHT), str(FPS), str(wav))
            self.pid = self._client.pid
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._client is not None and self._client.stdout is not None
        for line in self._client.stdout:
            self._lines.append(line)

    def text(self) -> str:
        return self._app.log_text() if self._app is not None else "".join(self._lines)

    def mic_origin(self) -> tuple[int, float] | None:
        found = MIC_ORIGIN.findall(self.text())
        return (int(found[-1][0]), float(found[-1][1])) if found else None

    def frames(self, api: ApiClient | None) -> dict[str, float] | None:
        """The camera encoder's counters (appliances only): frames read from the camera,
        read but skipped by the audio-first budget, encoded, keyframes; and when."""
        if api is None:
            return None
        before = time.monotonic()
        status, body = api.call("GET", "/api/status")
        at = (before + time.monotonic()) / 2
        if status != 200:
            return None
        encoder = body.get("media", {}).get("encoder", {})
        encodes = list(encoder.get("encodes", {}).values())
        return {"at": at, "read": encoder.get("frames_in", 0),
                "budget_skipped": encoder.get("budget", {}).get("frames_skipped", 0),
                "encoded": sum(e.get("frames_encoded", 0) for e in encodes),
                "keyframes": sum(e.get("keyframes", 0) for e in encodes)}

    def api(self, env: BenchRoom) -> ApiClient | None:
        """A logged-in client of an appliance's page, from a host of its own."""
        if self._app is None:
            return None
        client = ApiClient(env.network, self._app, f"{self._app.host.name}-api")
        client.login()
        return client

    def alive(self) -> bool:
        if self._app is not None:
            return bool(self._app.alive())
        return self._client is not None and self._client.poll() is None

    def stop(self) -> None:
        if self._app is not None:
            self._app.stop()
        elif self._client is not None and self._client.poll() is None:
            self._client.terminate()
            try:
                self._client.wait(15)
            except subprocess.TimeoutExpired:
                self._client.kill()
                self._client.wait(5)


def one_run(env: BenchRoom, cgroup: CpuQuota, kind: str, percent: int,
            wav: Path) -> dict[str, Any]:
    room = env.new_room()
    watch = Watch()
    timeline = marks.Timeline()
    member = env.peer("ear", room, tone="tone:880", receive_video=True)
    member.session._on_remote_video = watch
    assert member.session.speaker is not None
    member.session.speaker.add_playout_listener(timeline.listener)  # type: ignore[attr-defined]
    member.call(lambda s: s.join())
    cgroup.set_percent(None)
    with _normal_priority():
        pub = Publisher(env, kind, room, wav)
    api = None
    try:
        cgroup.add(pub.pid)
        wait_until(lambda: watch.frames or not pub.alive(), 90, f"video from {kind}")
        if not pub.alive():
            raise RuntimeError(f"{kind} publisher exited: {pub.text()[-2000:]}")
        with _normal_priority():
            api = pub.api(env)
        wait_until(pub.mic_origin, 30, f"the mic clock of {kind}")
        time.sleep(1.0)
        c0 = time.monotonic()
        time.sleep(CLEAN_S)
        _, clean_audio = timeline.between(c0, time.monotonic())
        clean_tone = float(np.median(tone_levels(clean_audio, marks.TONE_HZ)))
        # the mark's level follows from the tone's (they go through the same path)
        clean_mark = clean_tone * marks.MARK_AMPLITUDE / TONE_AMPLITUDE
        if SQUEEZE:
            cgroup.set_percent(SQUEEZE[0])
            time.sleep(SQUEEZE[1])
        cgroup.set_percent(percent)
        time.sleep(SETTLE_S)
        frames0 = pub.frames(api)  # before the window: the request's own CPU stays out
        stat0, cpu0, t0 = cgroup.stat(), proc_cpu_seconds(pub.pid), time.monotonic()
        window = ThreadWindow(pub.pid)
        time.sleep(SECONDS)
        stat1, cpu1, t1 = cgroup.stat(), proc_cpu_seconds(pub.pid), time.monotonic()
        threads, woke = window.end()
        frames1 = pub.frames(api)
        cgroup.set_percent(None)
        time.sleep(1.0)  # the last marks' way to the speaker
        alive = pub.alive()
        origin = pub.mic_origin()
        # how the member's jitter buffer saw the publisher's audio (late, lost, ...)
        member_jitter = member.call(lambda s: s.mixer.source_stats())
        budget_log = [line for line in pub.text().splitlines() if BUDGET_STEP.search(line)]
        room_log = [line for line in pub.text().splitlines() if ROOM_CHANGE.search(line)]
        # the member leaving and joining again looks the same at its speaker
        member_rejoins = [d.get("reason", "") for d in member.names("reconnecting")]
    finally:
        cgroup.set_percent(None)
        if api is not None:
            api.close()
        pub.stop()
        env.drop_peer(member)
    first, audio = timeline.between(t0, t1)
    levels = tone_levels(audio, marks.TONE_HZ)
    share, gap = continuity(levels, clean_tone) if clean_tone > 0 else (0.0, len(levels))
    latencies: list[float] = []
    if origin is not None and clean_mark > 0:
        ear = [first + i / marks.RATE for i in marks.mark_onsets(audio, 0.4 * clean_mark)]
        mouth = marks.mouth_times(marks.source_onsets(0.4 * marks.MARK_AMPLITUDE),
                                  origin[1], origin[0], 960, t1)
        latencies = [x * 1000 for x in marks.match(mouth, ear)]
    frames = watch.between(t0, t1)
    video = summarize([(n, g, t) for n, g, t, _ in frames])
    sent = None
    if frames0 is not None and frames1 is not None:
        # where the camera's ticks went: never read (the frame thread came back too late
        # for them, or they were above the budget's lower rate), read but skipped by the
        # budget, encoded; the member's count is "fps"
        sent = {k: frames1[k] - frames0[k] for k in frames0 if k != "at"}
        sent["camera_ticks"] = round(FPS * (frames1["at"] - frames0["at"]))
    widths = sorted({w for *_, w in frames})
    return {
        "quota_pct": percent, "wall_s": t1 - t0, "cpu_s": cpu1 - cpu0,
        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "threads_cpu_s": threads,
        "threads_wakeups_per_s": woke,
        "throttled_periods": stat1.get("nr_throttled", 0) - stat0.get("nr_throttled", 0),
        "periods": stat1.get("nr_periods", 0) - stat0.get("nr_periods", 0),
        "fps": video.get("fps", 0.0), "video": video, "widths": widths, "sent": sent,
        "continuity_pct": 100 * share, "longest_gap_ms": 20 * gap,
        "clean_tone": clean_tone, "clean_mark": clean_mark,
        "mouth_to_ear_ms": latencies, "mouth_to_ear_p50_ms": percentile(latencies, 50),
        "alive": alive, "member_jitter": member_jitter, "budget_steps": len(budget_log),
        "budget_log": budget_log, "room_log": room_log,
        "rejoins": sum("-> reconnecting" in line for line in room_log),
        "member_rejoins": member_rejoins,
    }


def _held_ms(run: dict[str, Any]) -> float | None:
    """How long the member's jitter buffer held the publisher's audio (its only source)."""
    sources = list((run.get("member_jitter") or {}).values())
    return sources[0].get("delay_ms") if len(sources) == 1 else None


def _m2e_note(ours: dict[str, Any], aiortc: dict[str, Any]) -> str:
    """The samples, and the mouth-to-ear p50 split at the member's jitter buffer: what the
    buffer held (where the packets happen to fall on the member's 20 ms pull grid, a
    draw at each join) and the rest (capture, encode, send, the room server)."""
    note = (f"n={len(ours.get('mouth_to_ear_ms', []))}/"
            f"{len(aiortc.get('mouth_to_ear_ms', []))}")
    held = [_held_ms(r) for r in (ours, aiortc)]
    p50 = [r.get("mouth_to_ear_p50_ms") for r in (ours, aiortc)]
    if None in held or None in p50:
        return note
    return (note + f"; the member's jitter buffer held ours {held[0]:.1f}, aiortc "
            f"{held[1]:.1f} ms (the phase of its pull grid); the rest, capture to that "
            f"buffer: ours {p50[0] - held[0]:.1f}, aiortc {p50[1] - held[1]:.1f} ms")


def _threads_note(run: dict[str, Any]) -> str:
    """Where ours spent its CPU, by thread (the largest four), and where its camera's
    frames went."""
    threads = list(run.get("threads_cpu_s", {}).items())[:4]
    note = ("; ours by thread: " + ", ".join(f"{k} {v:.2f} s" for k, v in threads)
            if threads else "")
    sent = run.get("sent")
    if sent:
        unread = max(0, sent["camera_ticks"] - sent["read"])
        note += (f"; ours' camera: {sent['camera_ticks']} ticks, {unread} never read (late, "
                 f"or above the budget's rate), {sent['budget_skipped']} read and skipped "
                 f"by the budget, {sent['encoded']} encoded ({sent['keyframes']} keyframes)")
    return note + wakeups_note(run)


def measure(quotas: tuple[int, ...] = QUOTAS) -> dict[str, Any]:
    results: dict[str, Any] = {"period_us": 0, "seconds": SECONDS, "runs": [],
                               "instrument_nice": INSTRUMENT_NICE}
    # Linux keeps a nice value per thread: threads made from here on inherit it.
    saved = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, INSTRUMENT_NICE)
    except OSError as exc:
        results["instrument_nice"] = f"not set: {exc}"
    try:
        return _measure(quotas, results)
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, saved)


def _measure(quotas: tuple[int, ...], results: dict[str, Any]) -> dict[str, Any]:
    with CpuQuota(f"edgeroom-bench-{os.getpid()}") as cgroup, BenchRoom("bq") as env:
        results["period_us"] = cgroup.period_us
        wav = marks.write_marked_tone(env.workdir / "marked-tone.wav")
        for percent in quotas:
            for kind in KINDS:
                started = time.monotonic()
                try:
                    got = one_run(env, cgroup, kind, percent, wav)
                except Exception as exc:
                    log.exception("%s at %d%%", kind, percent)
                    got = {"quota_pct": percent, "error": f"{type(exc).__name__}: {exc}"}
                got["kind"] = kind
                results["runs"].append(got)
                log.warning("quota %d%% %s: fps %.1f, continuity %.1f%%, m2e p50 %s ms, "
                            "cpu %.0f%% (%.0f s)", percent, kind, got.get("fps", 0),
                            got.get("continuity_pct", 0), got.get("mouth_to_ear_p50_ms"),
                            got.get("cpu_pct", 0), time.monotonic() - started)
    return results


def _good(run: dict[str, Any]) -> bool:
    return (run.get("fps", 0) >= FULL_FPS and run.get("continuity_pct", 0) >= CONTINUOUS_PCT)


def smallest_good(runs: list[dict[str, Any]], kind: str) -> int | None:
    """The smallest quota from which every larger one also delivered full video and audio."""
    mine = sorted((r for r in runs if r["kind"] == kind), key=lambda r: -r["quota_pct"])
    best = None
    for r in mine:
        if not _good(r):
            break
        best = r["quota_pct"]
    return best


def run() -> list[Row]:
    m = measure(CHOSEN)
    runs = m["runs"]
    rows = []
    for percent in CHOSEN:
        o = next((r for r in runs if r["quota_pct"] == percent and r["kind"] == "ours"), {})
        a = next((r for r in runs if r["quota_pct"] == percent and r["kind"] == "aiortc"), {})
        b = next((r for r in runs if r["quota_pct"] == percent and r["kind"] == "before"), {})
        before = (f"; before: {b.get('fps', 0):.1f} fps, {b.get('continuity_pct', 0):.1f}%, "
                  f"{b.get('mouth_to_ear_p50_ms') or 0:.0f} ms" if b else "")
        err = "; ".join(f"{k}: {r['error']}" for k, r in (("ours", o), ("aiortc", a))
                        if "error" in r)
        label = f"quota {percent}%"
        rows.append(Row("quota", f"{label}: fps decoded at the member", o.get("fps"), "fps",
                        a.get("fps"), "plain aiortc", lower_is_better=False,
                        notes=err or f"CPU used ours {o.get('cpu_pct', 0):.0f}% / aiortc "
                        f"{a.get('cpu_pct', 0):.0f}% of a core; widths {o.get('widths')} / "
                        f"{a.get('widths')}{before}{_threads_note(o)}",
                        extra={"ours": o, "aiortc": a, **({"before": b} if b else {})}))
        rows.append(Row("quota", f"{label}: audio continuity", o.get("continuity_pct"), "%",
                        a.get("continuity_pct"), "plain aiortc", lower_is_better=False,
                        notes=f"longest gap {o.get('longest_gap_ms', '-')} / "
                        f"{a.get('longest_gap_ms', '-')} ms"))
        rows.append(Row("quota", f"{label}: mouth-to-ear p50", o.get("mouth_to_ear_p50_ms"),
                        "ms", a.get("mouth_to_ear_p50_ms"), "plain aiortc",
                        notes=_m2e_note(o, a)))
    ours, ref = smallest_good(runs, "ours"), smallest_good(runs, "aiortc")
    rows.append(Row("quota", "smallest quota with 30 fps and continuous audio", ours,
                    "% of a core", ref, "plain aiortc",
                    notes=f"period {m['period_us'] // 1000} ms; {FULL_FPS:.0f}+ fps and "
                    f"{CONTINUOUS_PCT:.0f}%+ windows; none = not even at "
                    f"{max(CHOSEN)}%", extra={"period_us": m["period_us"]}))
    return rows


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.WARNING)
    chosen = tuple(int(x) for x in sys.argv[1:]) or CHOSEN
    print(json.dumps(measure(chosen), indent=1, default=str))
