"""GPIO buttons and LEDs on gpiozero's MockFactory (real gpiozero code, mock pins)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from drivers.errors import EdgeroomError, PinConflict
from drivers.gpio import (
    OFF,
    ON,
    BadPinFactory,
    ButtonEvent,
    Buttons,
    GpioError,
    Leds,
    blink,
    check_pins,
    double_blink,
    make_factory,
    pulse,
)
from drivers.gpio.factory import SIM_PIN_HISTORY

T = 5.0  # seconds any single await may take before the test fails


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory(pin_class=MockPWMPin)


@pytest.fixture
async def buttons(factory: MockFactory) -> AsyncIterator[Buttons]:
    b = Buttons({"call": 17, "mute": 27}, factory, bounce_time=0.02, hold_time=30)
    with b.open():
        yield b


@pytest.fixture
async def holding(factory: MockFactory) -> AsyncIterator[Buttons]:
    b = Buttons({"call": 17, "mute": 27}, factory, bounce_time=0.02, hold_time=0.3,
                repeat_interval=0.1)
    with b.open():
        yield b


async def next_event(b: Buttons) -> ButtonEvent:
    return await asyncio.wait_for(b.get(), T)


async def no_event(b: Buttons, within: float = 0.15) -> None:
    with pytest.raises(TimeoutError):
        ev = await asyncio.wait_for(b.get(), within)
        pytest.fail(f"unexpected event {ev}")


async def test_press_and_release(buttons: Buttons) -> None:
    pin = buttons.pin("call")
    assert pin.state is True  # pulled up, released
    pin.drive_low()
    ev = await next_event(buttons)
    assert (ev.role, ev.kind) == ("call", "press")
    assert buttons.is_pressed("call")
    pin.drive_high()
    ev = await next_event(buttons)
    assert (ev.role, ev.kind) == ("call", "release")
    assert 0 < ev.held < 30
    assert not buttons.is_pressed("call")
    assert repr(buttons).startswith("<Buttons call@17=up")


async def test_hold_then_auto_repeat_until_release(holding: Buttons) -> None:
    buttons = holding
    buttons.press("mute")
    kinds = [(await next_event(buttons)).kind for _ in range(4)]
    assert kinds == ["press", "hold", "repeat", "repeat"]
    buttons.release("mute")
    # Events already queued before the release may still arrive; then a release, then quiet.
    while (ev := await next_event(buttons)).kind == "repeat":
        pass
    assert ev.kind == "release" and ev.held >= 0.3
    await no_event(buttons, 0.3)


async def test_repeat_counts_up(holding: Buttons) -> None:
    buttons = holding
    buttons.press("call")
    events = [await next_event(buttons) for _ in range(5)]
    buttons.release("call")
    assert [e.count for e in events if e.kind == "repeat"] == [1, 2, 3]
    assert all(a.held <= b.held for a, b in itertools.pairwise(events))


async def test_bounce_is_filtered(buttons: Buttons) -> None:
    pin = buttons.pin("call")
    # A bouncing contact: several edges within the bounce time settle into one press.
    for _ in range(5):
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()
    ev = await next_event(buttons)
    assert ev.kind == "press"
    await no_event(buttons, 0.1)
    # A glitch shorter than the bounce time is no event at all.
    pin.drive_high()
    pin.drive_low()
    await no_event(buttons, 0.1)
    assert buttons.is_pressed("call")
    pin.drive_high()
    assert (await next_event(buttons)).kind == "release"


async def test_no_debounce_delivers_every_edge(factory: MockFactory) -> None:
    with Buttons({"call": 17}, factory, bounce_time=0.0, hold_time=5).open() as b:
        for _ in range(3):
            b.press("call")
            b.release("call")
        kinds = [(await next_event(b)).kind for _ in range(6)]
        assert kinds == ["press", "release"] * 3


async def test_active_high_with_pull_down(factory: MockFactory) -> None:
    with Buttons({"ptt": 22}, factory, active_high=True, pull_up=False,
                 bounce_time=0.0).open() as b:
        pin = b.pin("ptt")
        assert pin.state is False  # pulled down, released
        pin.drive_high()
        assert (await next_event(b)).kind == "press"
        b.release("ptt")
        assert pin.state is False
        assert (await next_event(b)).kind == "release"


async def test_external_pull_up_floats(factory: MockFactory) -> None:
    with Buttons({"hand": 25}, factory, active_high=False, pull_up=False,
                 bounce_time=0.0).open() as b:
        assert b.pin("hand").pull == "floating"
        b.pin("hand").drive_high()  # the external pull-up
        assert (await next_event(b)).kind == "release"
        b.pin("hand").drive_low()
        assert (await next_event(b)).kind == "press"


async def test_pull_up_with_active_high_is_refused(factory: MockFactory) -> None:
    with pytest.raises(GpioError, match="pull_up"):
        Buttons({"call": 17}, factory, active_high=True, pull_up=True)


def test_pin_used_twice_is_a_clear_error() -> None:
    with pytest.raises(PinConflict, match=r"GPIO17 is used twice: gpio.buttons.call and "
                                          r"gpio.leds.status"):
        check_pins({"call": 17, "mute": 27}, {"status": 17})
    with pytest.raises(PinConflict, match=r"gpio\.buttons\.a and gpio\.buttons\.b"):
        check_pins({"a": 4, "b": 4}, {})
    assert issubclass(PinConflict, EdgeroomError) and issubclass(PinConflict, ValueError)


async def test_pin_held_by_another_device_is_a_clear_error(factory: MockFactory) -> None:
    with Buttons({"call": 17}, factory).open():
        with pytest.raises(GpioError, match=r"gpio.leds.status: GPIO17 is already in use"):
            Leds({"status": 17}, factory).open()
        # The failed open released what it had claimed: GPIO5 is free again.
        with pytest.raises(GpioError, match="GPIO17"):
            Leds({"ok": 5, "status": 17}, factory).open()
        with Leds({"ok": 5}, factory).open() as leds:
            assert leds.roles == ["ok"]


async def test_invalid_pin_is_a_clear_error(factory: MockFactory) -> None:
    with pytest.raises(GpioError, match=r"gpio\.buttons\.call: cannot use GPIO99"):
        Buttons({"call": 99}, factory).open()


def test_factory_selection() -> None:
    mock = make_factory("mock")
    assert isinstance(mock, MockFactory) and issubclass(mock.pin_class, MockPWMPin)
    assert isinstance(make_factory("auto", sim=True), MockFactory)
    with pytest.raises(BadPinFactory, match="unknown pin factory"):
        make_factory("wiringpi")
    assert issubclass(BadPinFactory, EdgeroomError) and issubclass(BadPinFactory, ImportError)


def test_a_sim_pin_keeps_only_its_last_changes() -> None:
    """A sim box's LED that pulses or blinks for days does not grow its memory: the mock
    pin keeps its last SIM_PIN_HISTORY changes (gpiozero's own keeps every one)."""
    pin = make_factory("mock").pin(5)
    pin.function = "output"
    for i in range(5 * SIM_PIN_HISTORY):
        pin.state = (i % 20) / 20
    assert SIM_PIN_HISTORY <= len(pin.states) <= 2 * SIM_PIN_HISTORY
    assert [s.state for s in pin.states[-3:]] == [(i % 20) / 20 for i in range(
        5 * SIM_PIN_HISTORY - 3, 5 * SIM_PIN_HISTORY)]


def test_lgpio_unavailable_is_a_clear_error() -> None:
    try:
        import lgpio  # noqa: F401
    except ImportError:
        with pytest.raises(BadPinFactory, match="lgpio module is not installed"):
            make_factory("lgpio")
        with pytest.raises(BadPinFactory, match="lgpio"):
            make_factory("auto", sim=False)
    else:  # a machine with lgpio but (here) no GPIO chip
        with pytest.raises(BadPinFactory, match="cannot open the GPIO chip"):
            make_factory("lgpio")


async def test_close_is_idempotent_and_releases_pins(factory: MockFactory) -> None:
    b = Buttons({"call": 17}, factory).open()
    b.close()
    b.close()
    with pytest.raises(EOFError):
        await asyncio.wait_for(b.get(), T)
    with Buttons({"call": 17}, factory).open():
        pass


# -- LEDs ---------------------------------------------------------------------------------

def values(pin: MockPin) -> list[float]:
    return [float(s.state) for s in pin.states]


def test_steady_patterns(factory: MockFactory) -> None:
    with Leds({"status": 5}, factory).open() as leds:
        pin = leds.pin("status")
        leds.set("status", ON)
        assert pin.state == 1.0
        leds.set("status", OFF)
        assert pin.state == 0.0
        assert values(pin)[-2:] == [1.0, 0.0]
        leds.set("nonexistent", ON)  # an LED that is not configured is ignored


def test_blink_at_a_rate(factory: MockFactory) -> None:
    with Leds({"status": 5}, factory).open() as leds:
        pin = leds.pin("status")
        pin.clear_states()
        leds.set("status", blink(10))
        time.sleep(0.6)
        leds.set("status", OFF)
        seen = values(pin)[1:]
        assert len(seen) >= 6
        assert all(a != b for a, b in itertools.pairwise(seen))  # alternates
        assert set(seen) == {0.0, 1.0}
        assert leds.pattern("status").name == "off"


def test_finite_blink_ends_at_its_value(factory: MockFactory) -> None:
    with Leds({"status": 5}, factory).open() as leds:
        pin = leds.pin("status")
        pin.clear_states()
        pattern = blink(20, repeat=3)
        assert pattern.duration == pytest.approx(0.15)
        leds.set("status", pattern)
        deadline = time.monotonic() + T
        while len(values(pin)) < 7 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        assert values(pin) == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]


def test_double_blink_has_two_flashes_then_a_pause(factory: MockFactory) -> None:
    with Leds({"status": 5}, factory).open() as leds:
        pin = leds.pin("status")
        leds.set("status", double_blink(period=0.8))
        time.sleep(1.8)
        leds.set("status", OFF)
        # Each state change records how long the previous state lasted.
        offs = [s.timestamp for prev, s in zip(pin.states, pin.states[1:], strict=False)
                if prev.state == 0.0 and s.state == 1.0]
        assert len(offs) >= 3
        # Two kinds of gap: short (between the two flashes) and long (the pause). A busy
        # machine can only lengthen a gap, so the shortest stays short.
        assert max(offs) > 2 * min(offs)
        assert min(offs) < 0.3


def test_pulse_fades_with_pwm(factory: MockFactory) -> None:
    with Leds({"status": 5}, factory).open() as leds:
        assert leds.has_pwm("status")
        pin = leds.pin("status")
        leds.set("status", pulse(period=0.4, steps=8))
        time.sleep(0.5)
        leds.set("status", OFF)
        seen = values(pin)
        assert any(0.0 < v < 1.0 for v in seen)
        peak = seen.index(1.0)
        rise = seen[1:peak + 1]
        assert rise == sorted(rise)


def test_pulse_without_pwm_degrades_to_blink() -> None:
    factory = MockFactory(pin_class=MockPin)
    with Leds({"status": 5}, factory).open() as leds:
        assert not leds.has_pwm("status")
        pin = leds.pin("status")
        leds.set("status", pulse(period=0.2, steps=4))
        time.sleep(0.5)
        leds.set("status", OFF)
        assert set(values(pin)) == {0.0, 1.0}
        assert len(values(pin)) >= 4


def test_level_on_pwm(factory: MockFactory) -> None:
    from drivers.gpio import steady

    with Leds({"level": 13}, factory).open() as leds:
        leds.set("level", steady(0.25))
        assert leds.pin("level").state == pytest.approx(0.25)
        assert leds.snapshot() == {"level": "level:0.25"}
