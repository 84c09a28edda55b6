"""Audio first under CPU starvation: the video budget, the encode threads' priority, and
the smaller encode the budget asks for."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import statistics
import threading
from typing import Any

import pytest

from drivers.camera.sim import SimCamera
from services.media import pump
from services.media.budget import LADDER, AudioDeadline, VideoBudget
from services.media.codecs import ENCODER_NICE, CodecEncode, lower_thread_priority
from services.media.encoder import SharedVideoEncoder
from tests.harness.clock import Clock

from .helpers import FPS, HEIGHT, WIDTH


def _admitted(budget: VideoBudget, clock: Clock, seconds: float, fps: int = 30,
              late_s: float | None = None, audio: AudioDeadline | None = None) -> int:
    """Frames the budget admits from a ``fps`` camera over ``seconds``; the audio reports
    ``late_s`` with every frame when given."""
    admitted = 0
    for _ in range(round(seconds * fps)):
        clock.now += 1 / fps
        if late_s is not None and audio is not None:
            audio.report(late_s)
        admitted += budget.admit(clock.now, fps)
    return admitted


def test_late_audio_lowers_the_frame_rate_first_then_the_size_and_on_time_audio_brings_it_back(
        ) -> None:
    clock = Clock(1000.0)
    audio = AudioDeadline(clock=clock)
    budget = VideoBudget(audio, clock=clock)
    assert _admitted(budget, clock, 3, late_s=0.002, audio=audio) == 90  # on time: all
    seen = [budget.step]
    for _ in range(3 * len(LADDER) + 3):
        _admitted(budget, clock, 1.0, late_s=0.080, audio=audio)
        if budget.step != seen[-1]:
            seen.append(budget.step)
    assert seen == list(LADDER)  # one step per three late seconds, frame rate before size
    assert [s.scale for s in seen].index(0.5) == [s.fps for s in seen].index(10) + 1
    # at the last step: 5 of the camera's 30 frames a second
    assert _admitted(budget, clock, 2, late_s=0.080, audio=audio) in (10, 11)
    assert budget.frames_skipped > 0
    # back up one step per calm period
    _admitted(budget, clock, budget.calm_s + 1.5, late_s=0.001, audio=audio)
    assert budget.step == LADDER[-2]
    _admitted(budget, clock, 6 * (budget.calm_s + 1.5), late_s=0.001, audio=audio)
    assert budget.step == LADDER[0] and budget.steps_up == len(LADDER) - 1


def test_a_burst_as_the_audio_starts_or_one_late_packet_changes_nothing() -> None:
    clock = Clock(1000.0)
    audio = AudioDeadline(clock=clock)
    budget = VideoBudget(audio, clock=clock)
    # what the mic captured while the connection came up leaves at once, very late
    _admitted(budget, clock, 1.5, late_s=0.400, audio=audio)
    _admitted(budget, clock, 3, late_s=0.002, audio=audio)
    assert budget.step == LADDER[0]
    audio.report(0.090)  # one late packet: one late window
    _admitted(budget, clock, 3, late_s=0.002, audio=audio)
    assert budget.step == LADDER[0] and budget.steps_down == 0


def test_audio_far_too_late_steps_down_at_once() -> None:
    clock = Clock(1000.0)
    audio = AudioDeadline(clock=clock)
    budget = VideoBudget(audio, clock=clock)
    _admitted(budget, clock, 3, late_s=0.002, audio=audio)
    _admitted(budget, clock, 2.1, late_s=0.300, audio=audio)  # gaps at the receiver
    assert budget.steps_down >= 1


def test_no_audio_is_no_pressure() -> None:
    clock = Clock(1000.0)
    audio = AudioDeadline(clock=clock)
    audio.report(0.5)
    budget = VideoBudget(audio, clock=clock)
    clock.now += 2.5  # the late report is two windows old: forgotten
    assert _admitted(budget, clock, 2) == 60 and budget.step == LADDER[0]


def test_encode_threads_run_nicer_than_the_loop() -> None:
    got: list[int] = []

    def worker() -> None:
        lower_thread_priority()
        got.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert got == [max(ENCODER_NICE, os.getpriority(os.PRIO_PROCESS, 0))]
    # the calling thread (the loop's) kept its own; a process that already runs at
    # ENCODER_NICE or nicer cannot have its encode threads below it, only level with it
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if loop_nice < ENCODER_NICE:
        assert loop_nice < got[0]
    else:
        assert got[0] == loop_nice


async def test_the_budget_halves_the_encoded_size_and_the_encode_runs_nicer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    during: list[int] = []  # the encoding thread's nice value while it encodes
    after: list[int] = []  # the frame thread's while it hands the packets on

    def nice_now() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    encode, hand_on = CodecEncode.encode, pump._hand_on

    def noting_encode(self: CodecEncode, *args: Any) -> Any:
        during.append(nice_now())
        return encode(self, *args)

    def noting_hand_on(*args: Any) -> None:
        after.append(nice_now())
        hand_on(*args)

    monkeypatch.setattr(CodecEncode, "encode", noting_encode)
    monkeypatch.setattr(pump, "_hand_on", noting_hand_on)
    enc = SharedVideoEncoder(lambda: SimCamera(WIDTH, HEIGHT, FPS), encoder="libx264")
    sub = enc.subscribe("test", maxsize=200)
    enc.budget._level = LADDER.index(next(s for s in LADDER if s.scale < 1))
    await enc.start()
    try:
        packets = [await asyncio.wait_for(sub.get(), 5) for _ in range(6)]
        scaler = enc.encode_of("h264").scaler
    finally:
        await enc.stop()
    import av

    codec = av.CodecContext.create("h264", "r")
    frames = [f for p in packets for f in codec.decode(av.Packet(p.data))]
    assert frames and {(f.width, f.height) for f in frames} == {(WIDTH // 2, HEIGHT // 2)}
    numbers = [p.index for p in packets]
    assert all(b - a >= 2 for a, b in itertools.pairwise(numbers))  # <= 10 fps
    loop_nice = nice_now()
    assert during and all(n >= ENCODER_NICE for n in during)
    # the Python around the encode (packetizing, sending) runs at the loop's priority
    assert after and all(n == loop_nice for n in after)
    # every smaller frame came from one libswscale context, not one per frame
    assert scaler.frames >= len(frames) and scaler.contexts == 1


async def test_frames_the_budget_skips_are_not_read_from_the_camera() -> None:
    """At 5 fps of a 30 fps camera, the encoder reads about the frames it encodes (the
    sim camera renders only those), spaced a step's interval apart."""
    cameras: list[SimCamera] = []

    def camera() -> SimCamera:
        cameras.append(SimCamera(WIDTH, HEIGHT, FPS))
        return cameras[-1]

    enc = SharedVideoEncoder(camera, encoder="libx264")
    sub = enc.subscribe("test", maxsize=200)
    enc.budget._level = len(LADDER) - 1  # the last step: 5 fps
    assert LADDER[-1].fps == 5
    await enc.start()
    try:
        packets = [await asyncio.wait_for(sub.get(), 5) for _ in range(8)]
        rendered = cameras[0].stats["delivered"]
        frames_in = enc.frames_in
    finally:
        await enc.stop()
    numbers = sorted({p.index for p in packets})
    # a step apart; a wait that woke late (a busy machine) takes a later frame, and the
    # next one may come a frame sooner to keep the rate: mostly exactly a step
    step = FPS // 5
    gaps = [b - a for a, b in itertools.pairwise(numbers)]
    assert min(gaps) >= step - 1 and statistics.median(gaps) == step, numbers
    encoded = enc.stats["encodes"]["h264"]["frames_encoded"]
    # without waiting for its turn the loop would read every frame (6 per encoded one)
    assert frames_in <= encoded + 2 and rendered <= encoded + 2, (frames_in, rendered, encoded)
    assert enc.budget.frames_skipped <= 2


def test_audio_far_too_late_drops_two_steps_at_once_and_late_audio_one() -> None:
    clock = Clock(1000.0)
    audio = AudioDeadline(clock=clock)
    budget = VideoBudget(audio, clock=clock)
    _admitted(budget, clock, 3, late_s=0.002, audio=audio)
    levels = []
    for _ in range(60):  # two seconds, 150+ ms late: the receiver hears gaps
        _admitted(budget, clock, 1 / 30, late_s=0.300, audio=audio)
        levels.append(LADDER.index(budget.step))
    assert sorted(set(levels))[:2] == [0, 2]  # 30 fps x1 straight to 15 fps x1
    clock2 = Clock(1000.0)
    audio2 = AudioDeadline(clock=clock2)
    budget2 = VideoBudget(audio2, clock=clock2)
    _admitted(budget2, clock2, 3, late_s=0.002, audio=audio2)
    levels = []
    for _ in range(150):  # five seconds, 80 ms late
        _admitted(budget2, clock2, 1 / 30, late_s=0.080, audio=audio2)
        levels.append(LADDER.index(budget2.step))
    assert sorted(set(levels))[:2] == [0, 1]


def test_late_audio_of_an_earlier_call_does_not_hold_back_the_next_one() -> None:
    """The deadline is the process's: a new encode's budget (the next call, the camera
    turned on again) and audio that resumes after a pause start from what comes next,
    not from the last late window of the call before."""
    clock = Clock(1000.0)
    audio = AudioDeadline(clock=clock)
    budget = VideoBudget(audio, clock=clock)
    _admitted(budget, clock, 3, late_s=0.002, audio=audio)
    _admitted(budget, clock, 2.1, late_s=0.400, audio=audio)  # the call ends badly
    assert budget.steps_down >= 1
    clock.now += 5.0  # the audio stops: the call is over
    fresh = VideoBudget(audio, clock=clock)
    _admitted(fresh, clock, 4, late_s=0.002, audio=audio)  # the next call, on time
    assert fresh.step == LADDER[0] and fresh.steps_down == 0
    assert audio.worst() < 0.015


def test_a_new_audio_stream_settles_and_forgets_the_last_one() -> None:
    clock = Clock(1000.0)
    audio = AudioDeadline(clock=clock)
    for _ in range(200):  # a stream that ends while its packets leave 1.5 s late
        clock.now += 0.02
        audio.report(1.5)
    assert audio.worst() > 1.0
    audio.restart()  # the next publish starts at once, within the old window
    clock.now += 0.02
    audio.report(1.5)  # what its mic captured while connecting: settling, not counted
    assert audio.worst() == 0.0 and audio.last_window()[1] == 0.0


def test_every_step_delivers_its_own_frame_rate() -> None:
    """20 of a 30 fps camera's frames a second is two of every three, not every other
    one (which would be 15, the next step down)."""
    for level, step in enumerate(LADDER):
        clock = Clock(1000.0)
        audio = AudioDeadline(clock=clock)
        budget = VideoBudget(audio, clock=clock)
        budget._level, budget.calm_needed = level, 1e9  # no audio would step it up
        got = _admitted(budget, clock, 6)
        assert abs(got - 6 * step.fps) <= 1, (step, got)


def test_a_reader_that_waits_for_the_due_frame_reads_only_the_frames_it_encodes() -> None:
    """What the frame thread does: wait until :meth:`next_frame_at`, read the newest
    frame, ask :meth:`admit`. At every step it reads about the step's rate."""
    camera_fps = 30
    for level, step in enumerate(LADDER):
        clock = Clock(1000.0)
        budget = VideoBudget(AudioDeadline(clock=clock), clock=clock)
        budget._level, budget.calm_needed = level, 1e9
        tick, reads, admitted = 0, 0, []
        while tick < 6 * camera_fps:
            due = budget.next_frame_at(camera_fps)
            if due is not None:  # the newest tick at that time
                tick = max(tick, math.floor((due - 1000.0) * camera_fps + 1e-9))
            clock.now = 1000.0 + tick / camera_fps
            reads += 1
            if budget.admit(clock.now, camera_fps):
                admitted.append(tick)
            tick += 1
        assert abs(len(admitted) - 6 * step.fps) <= 1, (step, len(admitted))
        assert reads <= len(admitted) + 1, (step, reads, len(admitted))


def _levels_over(budget: VideoBudget, clock: Clock, audio: AudioDeadline, seconds: float,
                 late_s: float) -> list[int]:
    levels = []
    for _ in range(round(seconds)):
        _admitted(budget, clock, 1.0, late_s=late_s, audio=audio)
        levels.append(LADDER.index(budget.step))
    return levels


def test_a_step_up_the_cpu_cannot_carry_makes_the_next_one_wait_longer() -> None:
    clock = Clock(1000.0)
    audio = AudioDeadline(clock=clock)
    budget = VideoBudget(audio, clock=clock)
    _admitted(budget, clock, 3, late_s=0.002, audio=audio)
    budget._level = 2  # as after a squeeze
    # audio a little late but not late enough to step down: 20 ms counts as on time
    levels = _levels_over(budget, clock, audio, budget.calm_s + 1, 0.020)
    assert levels[-1] == 1 and budget.calm_needed == budget.calm_s
    # the step up was too much: late again within probe_s, down, and a longer wait
    levels = _levels_over(budget, clock, audio, 4, 0.080)
    assert levels[-1] == 2 and budget.calm_needed == 2 * budget.calm_s
    levels = _levels_over(budget, clock, audio, 2 * budget.calm_s + 2, 0.002)
    # not up after calm_s, up after twice that
    assert levels[round(budget.calm_s)] == 2 and levels[-1] == 1
    # this time it holds: after probe_s the wait is back to calm_s, and the next step up
    # (to full rate) follows calm_s later
    levels = _levels_over(budget, clock, audio, budget.probe_s + budget.calm_s + 2, 0.002)
    assert budget.calm_needed == budget.calm_s and levels[-1] == 0


def test_the_wait_for_a_step_up_is_bounded() -> None:
    clock = Clock(1000.0)
    audio = AudioDeadline(clock=clock)
    budget = VideoBudget(audio, clock=clock)
    _admitted(budget, clock, 3, late_s=0.002, audio=audio)
    for _ in range(12):  # every step up fails at once
        _admitted(budget, clock, 1.1, late_s=0.300, audio=audio)
        _levels_over(budget, clock, audio, budget.calm_needed + 2, 0.002)
    assert budget.calm_needed == budget.max_calm_s
