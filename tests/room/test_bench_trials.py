"""The benchmarks' trials still see what they time. A trial that fails every time prints
"-" in its row, which reads like a missing figure rather than a broken benchmark (the mute
button row did so for rounds after the mic track began sending Opus packets). Here each
trial runs a few times; what it measured is not checked against any figure."""

from __future__ import annotations

import pytest

from bench.env import BenchRoom

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]


def test_the_mute_button_trial_sees_the_silence_it_times() -> None:
    from bench.bench_control import button_to_silence

    with BenchRoom("bt") as env:
        got = button_to_silence(env, trials=3)
    assert got["failures"] == 0 and len(got["button_ms"]) == 3, got
    # the silence is seen after the press: never before the buttons' 20 ms debounce
    assert all(ms >= 19.0 for ms in got["button_ms"]), got
