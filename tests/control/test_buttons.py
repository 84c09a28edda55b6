"""Buttons and LEDs of a running appliance, on gpiozero's MockFactory pins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from device.app import Appliance
from device.controls import (
    RESET_CONFIRM,
    ROOM_STATUS_PATTERNS,
    SIM_BUTTONS,
    SIM_LEDS,
    STATE_PATTERNS,
    ButtonControls,
    SimButtons,
)
from device.state import ApplianceState
from tests.control.support import RunningApp, T, make_config, until

GPIO = {"buttons": {"call": 17, "mute": 27, "vol_up": 23, "vol_down": 24, "hand": 25,
                    "camera": 26, "record": 16, "ptt": 22},
        "leds": {"status": 5, "mute": 6, "camera": 12, "level": 13},
        "hold_time": 1.0, "repeat_interval": 0.1, "reset_hold_time": 3.0}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Appliance]:
    async with RunningApp(tmp_path, make_config(gpio=GPIO)) as a:
        await until(lambda: "gpio_controls" in a.extras)
        yield a


def controls(app: Appliance) -> ButtonControls:
    c = app.extras["gpio_controls"]
    assert isinstance(c, ButtonControls)
    return c


def panel(app: Appliance) -> SimButtons:
    p = app.extras["buttons"]
    assert isinstance(p, SimButtons)
    return p


async def click(app: Appliance, role: str) -> None:
    await asyncio.wait_for(panel(app).press(role), T)
    await asyncio.wait_for(panel(app).release(role), T)


async def test_sim_panel_lists_the_buttons(app: Appliance) -> None:
    assert sorted(panel(app).roles) == sorted(GPIO["buttons"])
    with pytest.raises(KeyError, match="no button 'nope'"):
        await panel(app).press("nope")


async def test_buttons_reach_the_dispatcher(app: Appliance) -> None:
    """Each role calls its action (no room here, so each is refused, visibly)."""
    sub = app.bus.subscribe(names={"action-failed"})
    expected = {"mute": "mute", "camera": "video", "hand": "hand", "vol_up": "volume",
                "vol_down": "volume", "record": "record", "call": "join"}
    for role, action in expected.items():
        await click(app, role)
        ev = await sub.get(T)
        assert ev.data["action"] == action, role
        assert ev.data["source"] == "gpio"
        assert ev.data["code"] == "UNAVAILABLE"
    await asyncio.wait_for(panel(app).press("ptt"), T)
    assert (await sub.get(T)).data["action"] == "ptt"
    await asyncio.wait_for(panel(app).release("ptt"), T)
    assert (await sub.get(T)).data["action"] == "ptt"


async def test_volume_auto_repeats_while_held(app: Appliance) -> None:
    sub = app.bus.subscribe(names={"action-failed"})
    await asyncio.wait_for(panel(app).press("vol_down"), T)
    got = [await sub.get(T) for _ in range(4)]  # press, hold, repeat, repeat
    await asyncio.wait_for(panel(app).release("vol_down"), T)
    assert {e.data["action"] for e in got} == {"volume"}


def pattern(app: Appliance, role: str) -> str:
    leds = controls(app).leds
    assert leds is not None
    return leds.pattern(role).name


async def test_status_led_shows_each_state(app: Appliance) -> None:
    assert pattern(app, "status") == STATE_PATTERNS[ApplianceState.IDLE].name
    leds = controls(app).leds
    assert leds is not None
    pin = leds.pin("status")
    for state, expected in [(ApplianceState.JOINING, "blink:4"),
                            (ApplianceState.IN_ROOM, "on"),
                            (ApplianceState.RECONNECTING, "pulse"),
                            (ApplianceState.ERROR, "double_blink"),
                            (ApplianceState.SETUP, "blink:0.5")]:
        app.state.set(state, "test")
        await until(lambda e=expected: pattern(app, "status") == e)  # type: ignore[misc]
    # And the pins show it: in_room is steady on; reconnecting fades (PWM values).
    app.state.set(ApplianceState.IN_ROOM, "test")
    await until(lambda: pin.state == 1.0)
    pin.clear_states()
    app.state.set(ApplianceState.RECONNECTING, "test")
    await asyncio.sleep(0.6)
    assert any(0.0 < s.state < 1.0 for s in pin.states)
    app.state.set(ApplianceState.JOINING, "test")
    await asyncio.sleep(0.05)
    pin.clear_states()
    await asyncio.sleep(0.7)
    assert {s.state for s in pin.states[1:]} == {0.0, 1.0}
    assert len(pin.states) >= 4


async def test_status_led_shows_a_paused_and_an_ended_room(app: Appliance) -> None:
    leds = controls(app).leds
    assert leds is not None
    pin = leds.pin("status")
    app.state.set(ApplianceState.IN_ROOM, "test")
    await until(lambda: pattern(app, "status") == "on")
    view = {"meta": {}, "notice": None, "ts": None, "by": None, "status_by": "7"}
    app.bus.publish("room-meta", {**view, "status": "paused"})
    await until(lambda: pattern(app, "status") == "room-paused")
    pin.clear_states()
    await asyncio.sleep(2.0)
    assert {s.state for s in pin.states} == {0.0, 1.0}  # on with a dark gap: it blinks
    app.bus.publish("room-meta", {**view, "status": "ended"})
    await until(lambda: pattern(app, "status") == "room-ended")
    assert ROOM_STATUS_PATTERNS["ended"] != ROOM_STATUS_PATTERNS["paused"]
    assert {p.name for p in ROOM_STATUS_PATTERNS.values()}.isdisjoint(
        p.name for p in STATE_PATTERNS.values())
    # Out of the room, the appliance's own state shows again; live is steady on.
    app.state.set(ApplianceState.RECONNECTING, "test")
    await until(lambda: pattern(app, "status") == "pulse")
    app.state.set(ApplianceState.IN_ROOM, "test")
    await until(lambda: pattern(app, "status") == "room-ended")
    app.bus.publish("room-meta", {**view, "status": "live"})
    await until(lambda: pattern(app, "status") == "on")


async def test_mute_and_camera_leds_follow_controls(app: Appliance) -> None:
    leds = controls(app).leds
    assert leds is not None
    app.bus.publish("controls", {"mic_enabled": False, "video_enabled": True, "deaf": False})
    await until(lambda: leds.pin("mute").state == 1.0)
    assert leds.pin("camera").state == 0.0
    app.bus.publish("controls", {"mic_enabled": True, "video_enabled": False, "deaf": False})
    await until(lambda: leds.pin("mute").state == 0.0 and leds.pin("camera").state == 1.0)
    app.bus.publish("talking", {"id": "local", "talking": True})
    await until(lambda: leds.pin("level").state == 1.0)
    app.bus.publish("talking", {"id": "someone", "talking": False})
    app.bus.publish("talking", {"id": "local", "talking": False})
    await until(lambda: leds.pin("level").state == 0.0)


async def test_level_led_follows_local_voice_activity(app: Appliance) -> None:
    leds = controls(app).leds
    assert leds is not None and leds.has_pwm("level")
    app.bus.publish("local-talking", {"talking": True, "level_dbfs": -30.0})
    await until(lambda: abs(leds.pin("level").state - 0.5) < 0.01)
    app.bus.publish("local-talking", {"talking": True, "level_dbfs": -6.0})
    await until(lambda: abs(leds.pin("level").state - 0.9) < 0.01)
    app.bus.publish("local-talking", {"talking": False, "level_dbfs": -80.0})
    await until(lambda: leds.pin("level").state == 0.0)


async def test_call_held_resets_after_confirmation(app: Appliance) -> None:
    state = app.state_dir
    (state / "web-password.hash").write_text("x")
    (state / "recordings").mkdir()
    (state / "recordings" / "keep.mkv").write_bytes(b"data")
    leds = controls(app).leds
    assert leds is not None
    sub = app.bus.subscribe(names={"factory-reset-confirm", "factory-reset", "state"})
    started = time.monotonic()
    await asyncio.wait_for(panel(app).press("call"), T)
    await until(lambda: pattern(app, "status") == "blink:2")  # armed: keep holding
    confirm = await sub.get(T + 3)
    assert confirm.name == "factory-reset-confirm"
    assert time.monotonic() - started >= 3.0  # gpio.reset_hold_time
    assert {leds.pattern(r).name for r in leds.roles} == {RESET_CONFIRM.name}
    reset = await sub.get(T)
    assert reset.name == "factory-reset"
    await asyncio.wait_for(panel(app).release("call"), T)
    ev = await sub.get(T)
    assert ev.name == "state" and ev.data["new"] == "setup"
    assert not app.config_path.exists()
    assert not (state / "web-password.hash").exists()
    assert (state / "recordings" / "keep.mkv").read_bytes() == b"data"
    assert app.reset_task is not None
    await asyncio.wait_for(app.reset_task, T)
    # The gpio subsystem came back with the same pins, showing setup.
    await until(lambda: "gpio_controls" in app.extras and controls(app).leds is not None
                and pattern(app, "status") == "blink:0.5")


async def test_call_held_short_of_reset_does_nothing(app: Appliance) -> None:
    sub = app.bus.subscribe(names={"action-failed", "factory-reset-confirm"})
    await asyncio.wait_for(panel(app).press("call"), T)
    await until(lambda: pattern(app, "status") == "blink:2")
    await asyncio.sleep(0.5)
    await asyncio.wait_for(panel(app).release("call"), T)
    await until(lambda: pattern(app, "status") == "heartbeat")
    with pytest.raises(TimeoutError):
        await sub.get(0.3)
    assert app.config_path.exists()


async def test_pin_conflict_fails_the_gpio_subsystem_clearly(tmp_path: Path) -> None:
    gpio = {"buttons": {"call": 17}, "leds": {"status": 17}}
    async with RunningApp(tmp_path, make_config(gpio=gpio)) as a:
        sub = a.bus.subscribe(names={"subsystem-failed"})
        ev = await sub.get(T)
        assert ev.data["name"] == "gpio"
        assert ev.data["error"] == ("PinConflict: GPIO17 is used twice: gpio.buttons.call "
                                    "and gpio.leds.status")
        assert a.supervisor.subsystems["serial"].failures == 0  # the rest keeps running


async def test_sim_defaults_when_nothing_is_configured(tmp_path: Path) -> None:
    async with RunningApp(tmp_path, make_config()) as a:
        await until(lambda: "gpio_controls" in a.extras)
        assert sorted(panel(a).roles) == sorted(SIM_BUTTONS)
        leds = controls(a).leds
        assert leds is not None and sorted(leds.roles) == sorted(SIM_LEDS)


async def test_no_gpio_without_sim_and_config(tmp_path: Path) -> None:
    async with RunningApp(tmp_path, make_config(), sim=False) as a:
        await asyncio.sleep(0.2)
        assert "gpio_controls" not in a.extras
        assert a.supervisor.subsystems["gpio"].failures == 0


async def test_lgpio_missing_is_a_clear_error_at_start(tmp_path: Path) -> None:
    try:
        import lgpio  # noqa: F401
        pytest.skip("this machine has lgpio")
    except ImportError:
        pass
    gpio: dict[str, Any] = {"backend": "lgpio", "buttons": {"call": 17}}
    async with RunningApp(tmp_path, make_config(gpio=gpio), sim=False) as a:
        sub = a.bus.subscribe(names={"subsystem-failed"})
        ev = await sub.get(T)
        assert ev.data["name"] == "gpio"
        assert ev.data["error"].startswith("BadPinFactory: gpio.backend = lgpio: the lgpio "
                                           "module is not installed")


async def test_config_change_rewires_the_buttons(app: Appliance) -> None:
    old = controls(app)
    await asyncio.wait_for(app.update_config({"gpio": {"buttons": {"call": 18, "mute": 27},
                                                       "leds": {"status": 5}}}), T)
    await until(lambda: "gpio_controls" in app.extras and controls(app) is not old)
    assert sorted(panel(app).roles) == ["call", "mute"]
    assert controls(app).buttons is not None
    assert controls(app).buttons.pins == {"call": 18, "mute": 27}
    sub = app.bus.subscribe(names={"action-failed"})
    await click(app, "mute")
    assert (await sub.get(T)).data["action"] == "mute"
