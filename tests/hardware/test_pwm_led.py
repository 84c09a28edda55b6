"""A PWM LED on a real board: half brightness is a square wave, high about half the time.

Uses the same jumper as the GPIO loopback test, ``EDGEROOM_TEST_GPIO_LOOP=OUT,IN``: the
output pin is driven as a PWM LED, the input pin samples it.
"""

from __future__ import annotations

import os
import time

import pytest

pytestmark = pytest.mark.hardware

try:
    import lgpio  # noqa: F401
except ImportError:
    pytest.skip("lgpio does not import here (a Raspberry Pi with the [pi] extra only)",
                allow_module_level=True)

_LOOP = os.environ.get("EDGEROOM_TEST_GPIO_LOOP", "")
if not _LOOP:
    pytest.skip("set EDGEROOM_TEST_GPIO_LOOP=OUT,IN (BCM pins joined by a jumper)",
                allow_module_level=True)

from drivers.gpio import make_factory  # noqa: E402

OUT, IN = (int(p) for p in _LOOP.split(","))


def test_pwm_led_duty_cycle_reaches_the_input_pin() -> None:
    from gpiozero import PWMLED, DigitalInputDevice

    factory = make_factory("lgpio")
    try:
        led = PWMLED(OUT, pin_factory=factory, frequency=100)
        pin = DigitalInputDevice(IN, pull_up=False, pin_factory=factory)
        try:
            for value in (0.0, 0.25, 0.75, 1.0):
                led.value = value
                time.sleep(0.1)
                samples = []
                end = time.monotonic() + 1.0
                while time.monotonic() < end:
                    samples.append(pin.value)
                high = sum(samples) / len(samples)
                assert abs(high - value) < 0.1, f"LED at {value}: input high {high:.2f}"
        finally:
            led.close()
            pin.close()
    finally:
        factory.close()
