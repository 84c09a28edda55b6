"""GPIO through lgpio on a real board.

Needs a jumper wire between two free header pins, named (BCM numbers, output first) in
``EDGEROOM_TEST_GPIO_LOOP``, e.g. ``EDGEROOM_TEST_GPIO_LOOP=20,21`` for pins 38 and 40.
The output pin is driven as an LED; the input pin reads it as an active-high button
with the internal pull-down.
"""

from __future__ import annotations

import asyncio
import os

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

from drivers.gpio import OFF, ON, Buttons, Leds, make_factory  # noqa: E402

OUT, IN = (int(p) for p in _LOOP.split(","))


async def test_led_pin_drives_button_pin_through_the_jumper() -> None:
    factory = make_factory("lgpio")
    try:
        with Leds({"status": OUT}, factory).open() as leds, \
                Buttons({"call": IN}, factory, active_high=True, pull_up=False,
                        bounce_time=0.01, hold_time=5).open() as buttons:
            for _ in range(3):
                leds.set("status", ON)
                assert (await asyncio.wait_for(buttons.get(), 2)).kind == "press"
                leds.set("status", OFF)
                assert (await asyncio.wait_for(buttons.get(), 2)).kind == "release"
    finally:
        factory.close()
