"""Audio first when the CPU cannot keep up: video gives way, frame rate first, then size.

The mic's packets have a deadline: a frame captured at ``t`` that lasts ``d`` is due to
leave at ``t + d``. :class:`AudioDeadline` (one per process, :data:`AUDIO_DEADLINE`) is
told by the audio path how late each packet left; on a CPU that keeps up that is a
millisecond or two, on a starved one it is tens of milliseconds, and the receiver hears
it as gaps. :class:`VideoBudget` reads it once a second and moves the camera's encode
down a ladder of frame rates and then sizes (:data:`LADDER`) while the audio is late,
and back up after it has been on time for a while. The encode is told each step: frames
above the step's rate are not encoded at all, and a smaller size reopens the encoder at
that size.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One rung of the ladder: at most ``fps`` frames a second, each side times ``scale``."""

    fps: float
    scale: float


#: From full video down to what still moves: frame rate first, then size.
LADDER = (Step(30, 1.0), Step(20, 1.0), Step(15, 1.0), Step(10, 1.0), Step(10, 0.5),
          Step(5, 0.5))


class AudioDeadline:
    """How late the audio leaves, as the worst lateness of each ``window_s`` window.

    The first ``settle_s`` after the audio starts (or resumes after a pause) do not
    count: a mic that has just opened hands over what it captured while the connection
    came up, all at once, and that is not the CPU's doing.
    """

    def __init__(self, window_s: float = 1.0, settle_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.settle_s = settle_s
        self._clock = clock
        self._window_start = clock()
        self._worst = 0.0
        self._last_worst = 0.0
        self._last_report = -1e9
        self._started = -1e9
        self.reports = 0
        self.windows = 0

    def report(self, late_s: float) -> None:
        """A packet left ``late_s`` seconds after its deadline (negative: early)."""
        now = self._clock()
        self.reports += 1
        if now - self._last_report > 2 * self.window_s:
            # (re)started: settle first, and forget how late the audio was before
            self._started = now
            self._window_start, self._worst, self._last_worst = now, 0.0, 0.0
        self._last_report = now
        if now - self._started < self.settle_s:
            return
        if now - self._window_start >= self.window_s:
            self.windows += 1
            self._last_worst = self._worst
            self._window_start, self._worst = now, 0.0
        if late_s > self._worst:
            self._worst = late_s

    def restart(self) -> None:
        """A new audio stream starts (a new publish): it settles first, and how late the
        one before it was no longer counts."""
        self._last_report = -1e9
        self._last_worst = self._worst = 0.0

    def last_window(self) -> tuple[int, float]:
        """(how many windows have ended, the worst lateness in the last one)."""
        return self.windows, self._last_worst

    def worst(self) -> float:
        """The worst lateness of the window under way and the one before (0 when no
        audio has been sent for two windows)."""
        if self._clock() - self._last_report >= 2 * self.window_s:
            return 0.0
        return max(self._worst, self._last_worst)


#: The process's audio path reports here (the room's mic track).
AUDIO_DEADLINE = AudioDeadline()


class VideoBudget:
    """Which step of :data:`LADDER` the camera's encode may use now.

    Down one step when the audio was more than ``late_s`` late in ``late_checks``
    windows of :class:`AudioDeadline` in a row, two steps when it was more than
    ``severe_s`` late in one (the receiver is already hearing gaps); up one step after
    ``calm_s`` in which it never was more than ``on_time_s`` late.

    A step up is a probe: when the budget has to step down again within ``probe_s`` of
    it, the CPU could not carry that step, and the next step up waits twice as long
    (up to ``max_calm_s``); a step up that holds (for ``probe_s``, or until the next
    step up) brings the wait back to ``calm_s``. So a squeeze that passes (a burst of
    work elsewhere, the first seconds of a quota) costs frames for seconds, not for the
    rest of the call, and a CPU that cannot carry more is not asked again every few
    seconds.
    """

    def __init__(self, audio: AudioDeadline = AUDIO_DEADLINE, *, late_s: float = 0.060,
                 on_time_s: float = 0.030, check_s: float = 1.0, calm_s: float = 4.0,
                 late_checks: int = 3, severe_s: float = 0.150, probe_s: float = 10.0,
                 max_calm_s: float = 64.0, clock: Callable[[], float] = time.monotonic,
                 name: str = "camera") -> None:
        self.audio = audio
        self.late_s = late_s
        self.on_time_s = on_time_s
        self.check_s = check_s
        self.calm_s = calm_s
        self.probe_s = probe_s
        self.max_calm_s = max_calm_s
        #: how long the audio must be on time before the next step up
        self.calm_needed = calm_s
        self._probe_at: float | None = None  # when the step up under trial was taken
        self.late_checks = late_checks
        self.severe_s = severe_s
        self._late_in_a_row = 0
        # the deadline is the process's: only windows that end from now on count
        self._windows_seen = audio.windows
        self.name = name
        self._clock = clock
        self._level = 0
        self._checked = clock()
        self._calm_since = clock()
        self._last_admitted = -1e9
        self._next_due: float | None = None  # capture time the next frame is due
        self.steps_down = 0
        self.steps_up = 0
        self.frames_skipped = 0

    def __repr__(self) -> str:
        return (f"<VideoBudget {self.name} {self.step.fps:g} fps x{self.step.scale:g} "
                f"skipped={self.frames_skipped} audio_late={self.audio.worst() * 1000:.0f}ms>")

    @property
    def step(self) -> Step:
        return LADDER[self._level]

    def _check(self, now: float) -> None:
        """Once per ended window of the audio's lateness (or per ``check_s`` while no
        audio is sent: no pressure then)."""
        windows, worst = self.audio.last_window()
        if windows == self._windows_seen:
            if now - self._checked < 2 * self.check_s:
                return
            worst = 0.0  # no audio sent: nothing to make way for
        self._windows_seen = windows
        self._checked = now
        if worst > self.on_time_s:
            self._calm_since = now
        self._late_in_a_row = self._late_in_a_row + 1 if worst > self.late_s else 0
        if self._probe_at is not None and now - self._probe_at >= self.probe_s:
            self._probe_at, self.calm_needed = None, self.calm_s  # the step up held
        if ((self._late_in_a_row >= self.late_checks or worst > self.severe_s)
                and self._level < len(LADDER) - 1):
            self._late_in_a_row = 0
            if self._probe_at is not None:  # the step up did not hold: wait longer
                self._probe_at = None
                self.calm_needed = min(self.max_calm_s, 2 * self.calm_needed)
            # far too late: the receiver is hearing gaps now, two rungs at once
            self._move(2 if worst > self.severe_s else 1, worst)
        elif self._level > 0 and now - self._calm_since >= self.calm_needed:
            if self._probe_at is not None:  # calm since the last step up: that one held
                self.calm_needed = self.calm_s
            self._calm_since = self._probe_at = now
            self._move(-1, worst)

    def _move(self, delta: int, worst: float) -> None:
        before = self.step
        level = max(0, min(len(LADDER) - 1, self._level + delta))
        delta, self._level = level - self._level, level
        if delta > 0:
            self.steps_down += delta
        else:
            self.steps_up -= delta
        log.info("%s video budget: %g fps x%g -> %g fps x%g (audio up to %.0f ms late)",
                 self.name, before.fps, before.scale, self.step.fps, self.step.scale,
                 worst * 1000)

    def admit(self, captured_at: float, camera_fps: float) -> bool:
        """Whether to encode the frame captured at ``captured_at`` (a camera at
        ``camera_fps``); frames above the step's rate are skipped.

        The admitted frames follow a schedule of the step's interval, each the camera
        frame nearest its due time, so that a rate the camera's does not divide (20 of
        30) comes out right on average (2 frames of every 3), not rounded down to the
        next divisor (every other frame, 15).
        """
        self._check(self._clock())
        fps = self.step.fps
        if fps >= camera_fps or camera_fps <= 0:
            self._last_admitted, self._next_due = captured_at, None
            return True
        interval = 1.0 / fps
        slack = _slack(camera_fps)
        due = self._next_due
        if due is None or captured_at >= due - slack:
            self._last_admitted = captured_at
            # a frame read late moves the schedule on: the next ones do not bunch up
            # to catch up
            self._next_due = (captured_at + interval if due is None
                              else max(due + interval, captured_at + interval - 2 * slack))
            return True
        self.frames_skipped += 1
        return False

    def next_frame_at(self, camera_fps: float) -> float | None:
        """When (capture time) the next frame this step admits comes from a camera at
        ``camera_fps``, so that the frames in between need not be read at all; None
        while every frame is admitted."""
        fps = self.step.fps
        due = self._next_due
        if fps >= camera_fps or camera_fps <= 0 or due is None:
            return None
        # the camera ticks every 1/camera_fps from the last admitted frame on: the due
        # frame is the first tick within the slack of the due time; a quarter frame
        # past that tick the newest frame is the due one
        ticks = max(1, math.ceil((due - _slack(camera_fps) - self._last_admitted)
                                 * camera_fps - 1e-3))
        return self._last_admitted + (ticks + 0.25) / camera_fps

    @property
    def stats(self) -> dict[str, Any]:
        return {"fps": self.step.fps, "scale": self.step.scale,
                "frames_skipped": self.frames_skipped, "steps_down": self.steps_down,
                "steps_up": self.steps_up, "calm_needed_s": self.calm_needed,
                "audio_late_ms": round(self.audio.worst() * 1000, 1)}


def _slack(camera_fps: float) -> float:
    """A camera frame within half a frame of a due time is the one due (a hair more, so
    that one exactly half a frame away counts: 20 of 30 fps has those)."""
    return 0.5 / camera_fps + 1e-6
