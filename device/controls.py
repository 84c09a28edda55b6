"""Buttons drive the dispatcher; LEDs show the appliance's state from the event bus.

Button map (every role optional, pins from ``gpio.buttons``):

``call``      short press joins or leaves; held ``gpio.reset_hold_time`` s: factory reset
``mute``      toggles the mic            ``ptt``       mic live only while held
``vol_up``    one step per press, auto-repeat while held (``gpio.volume_target``)
``vol_down``  likewise                   ``camera``    privacy toggle (video off)
``hand``      raises/lowers a hand       ``record``    starts/stops recording
``layout``    the screen's next layout (grid, speaker, single)

LEDs (``gpio.leds``): ``status`` (a pattern per state; in a room whose status is paused
or ended, a pattern for each), ``mute`` (lit while the mic is
muted), ``camera`` (lit while video is off), ``level`` (lit, or brightness on PWM, while
this box talks), ``mic_active`` (lit exactly while the capture device is open, whoever
uses it: the room, a recording, a stream, the page's level meter).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from device.state import ApplianceState
from drivers.common.actions import ACTIONS, ActionError
from drivers.gpio import (
    OFF,
    ON,
    ButtonEvent,
    Buttons,
    LedPattern,
    Leds,
    blink,
    double_blink,
    make_factory,
    pulse,
    steady,
)
from drivers.gpio.factory import check_pins

if TYPE_CHECKING:
    from device.host import Host

log = logging.getLogger(__name__)

BUTTON_ROLES = ("call", "mute", "ptt", "vol_up", "vol_down", "camera", "hand", "record",
                "layout")
LED_ROLES = ("status", "mute", "camera", "level", "mic_active")

#: Pins used with ``--sim`` when the config names none (no ``ptt``: it would mute the mic).
SIM_BUTTONS = {"call": 17, "mute": 27, "vol_up": 23, "vol_down": 24, "hand": 25, "camera": 26,
               "record": 16}
SIM_LEDS = {"status": 5, "mute": 6, "camera": 12, "level": 13, "mic_active": 19}

HEARTBEAT = LedPattern("heartbeat", ((1.0, 0.05), (0.0, 2.95)))
STATE_PATTERNS: dict[str, LedPattern] = {
    ApplianceState.SETUP: blink(0.5),  # slow: 1 s on, 1 s off
    ApplianceState.IDLE: HEARTBEAT,
    ApplianceState.JOINING: blink(4),  # fast
    ApplianceState.IN_ROOM: ON,
    ApplianceState.RECONNECTING: pulse(),
    ApplianceState.ERROR: double_blink(),
}
#: In a room whose status (room metadata, docs/room.md) is paused or ended, the status LED
#: says so instead of steady on: paused is on with a short dark gap, ended three quick
#: flashes and a pause.
ROOM_STATUS_PATTERNS: dict[str, LedPattern] = {
    "paused": LedPattern("room-paused", ((1.0, 1.5), (0.0, 0.3))),
    "ended": LedPattern("room-ended", ((1.0, 0.1), (0.0, 0.15)) * 3 + ((0.0, 1.5),)),
}
#: What a press of each simple button does: the action and its arguments, checked against
#: the action's declaration (drivers/common/actions.py) when the controls start.
PRESS_ACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "mute": ("mute", {"state": "toggle"}),
    "camera": ("video", {"state": "toggle"}),
    "hand": ("hand", {"state": "toggle"}),
    "layout": ("layout", {"layout": "next"}),
}
RESET_ARMED = blink(2)  # call held past hold_time: keep holding to reset
RESET_CONFIRM = blink(8, repeat=12)  # 1.5 s of rapid flashes, then the reset


class ButtonControls:
    """Runs the buttons and LEDs of one appliance until cancelled."""

    def __init__(self, app: Host, buttons: Buttons | None, leds: Leds | None) -> None:
        self.app = app
        self.buttons = buttons
        self.leds = leds
        gpio = app.config.gpio
        self.reset_hold_time = gpio.reset_hold_time
        self.volume_target = gpio.volume_target
        for action, args in self.button_actions():
            ACTIONS[action].validate(args)  # a mismatch is a bug: fail at start, not on a press
        self.has_ptt = buttons is not None and "ptt" in buttons.roles
        self._ptt_muted = False
        self._recording = False
        self._resetting = False
        self._call_held = False
        self._room_status: str | None = None

    def __repr__(self) -> str:
        return f"<ButtonControls {self.buttons!r} {self.leds!r}>"

    def button_actions(self) -> list[tuple[str, dict[str, Any]]]:
        """Every action (with its arguments) a button can run."""
        return [*PRESS_ACTIONS.values(),
                *(("volume", {"target": self.volume_target, "step": step})
                  for step in ACTIONS["volume"].arg("step").choices),
                *(("ptt", {"state": s}) for s in ACTIONS["ptt"].arg("state").choices),
                *(("record", {"state": s}) for s in ACTIONS["record"].arg("state").choices),
                ("join", {}), ("leave", {}), ("factory_reset", {})]

    # -- running ----------------------------------------------------------------------

    async def run(self) -> None:
        sub = self.app.bus.subscribe(maxsize=128, names={
            "state", "controls", "talking", "local-talking", "entered", "room-state",
            "recording-started",
            "recording-stopped", "mic-open", "room-meta"})
        try:
            self._show_state(str(self.app.state.state))
            self._set_led("mic_active", ON if self._mic_is_open() else OFF)
            room = self.app.room
            if room is not None:
                self._show_controls(room.controls.to_dict())
            await self._ptt_mute()
            async with asyncio.TaskGroup() as tg:
                if self.buttons is not None:
                    tg.create_task(self._button_loop(self.buttons), name="gpio:buttons")
                tg.create_task(self._event_loop(sub), name="gpio:leds")
        finally:
            sub.close()

    async def _button_loop(self, buttons: Buttons) -> None:
        async for ev in buttons:
            try:
                await self.on_button(ev)
            except asyncio.CancelledError:
                raise
            except ActionError as exc:
                log.warning("button %s: %s %s", ev.role, exc.code, exc.message)
            except Exception:
                log.exception("button %s %s failed", ev.role, ev.kind)

    async def _event_loop(self, sub: Any) -> None:
        async for ev in sub:
            if ev.name == "state":
                if not self._call_held:
                    self._show_state(ev.data.get("new", ""))
            elif ev.name == "controls":
                self._show_controls(ev.data)
            elif ev.name == "room-meta":
                self._room_status = ev.data.get("status")
                if not self._call_held:
                    self._show_state(str(self.app.state.state))
            elif ev.name == "talking" and ev.data.get("id") == "local":
                self._set_led("level", ON if ev.data.get("talking") else OFF)
            elif ev.name == "local-talking":
                # Voice activity from the mic's own processing (echo-cancelled, so the
                # room's voices from the speaker do not light it).
                self._show_level(bool(ev.data.get("talking")), ev.data.get("level_dbfs"))
            elif ev.name == "mic-open":
                self._set_led("mic_active", ON if ev.data.get("open") else OFF)
            elif ev.name in ("recording-started", "recording-stopped"):
                self._recording = ev.name == "recording-started"
            elif ev.name in ("entered", "room-state") and not self._ptt_muted:
                await self._ptt_mute()

    # -- buttons ----------------------------------------------------------------------

    async def act(self, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.app.dispatcher.dispatch(action, args or {}, "gpio")

    async def on_button(self, ev: ButtonEvent) -> None:
        role, kind = ev.role, ev.kind
        if role == "call":
            await self._on_call(ev)
        elif role in PRESS_ACTIONS and kind == "press":
            await self.act(*PRESS_ACTIONS[role])
        elif role == "ptt" and kind in ("press", "release"):
            await self.act("ptt", {"state": "start" if kind == "press" else "stop"})
        elif role in ("vol_up", "vol_down") and kind in ("press", "hold", "repeat"):
            await self.act("volume", {"target": self.volume_target,
                                      "step": "up" if role == "vol_up" else "down"})
        elif role == "record" and kind == "press":
            result = await self.act("record", {"state": "stop" if self._recording else "start"})
            self._recording = bool(result.get("recording", not self._recording))

    async def _on_call(self, ev: ButtonEvent) -> None:
        if ev.kind == "press":
            self._call_held = True
        elif ev.kind == "hold":
            self._set_led("status", RESET_ARMED)
        elif ev.kind == "repeat" and ev.held >= self.reset_hold_time and not self._resetting:
            await self._factory_reset()
        elif ev.kind == "release":
            self._call_held = False
            if self._resetting:
                return
            if self.buttons is not None and ev.held < self.buttons.hold_time:
                state = self.app.state.state
                busy = state in (ApplianceState.JOINING, ApplianceState.IN_ROOM,
                                 ApplianceState.RECONNECTING)
                await self.act("leave" if busy else "join")
            self._show_state(str(self.app.state.state))

    async def _factory_reset(self) -> None:
        self._resetting = True
        log.warning("call held %.0f s: factory reset", self.reset_hold_time)
        self.app.bus.publish("factory-reset-confirm", {"source": "gpio"})
        for role in LED_ROLES:
            if role != "mic_active":  # the privacy light shows only the mic, always
                self._set_led(role, RESET_CONFIRM)
        await asyncio.sleep(RESET_CONFIRM.duration or 0.0)
        try:
            await self.act("factory_reset")
        finally:
            self._resetting = False
            self._call_held = False

    async def _ptt_mute(self) -> None:
        """With a ptt button the mic starts muted (live only while ptt is held)."""
        if not self.has_ptt or self._ptt_muted or self.app.room is None:
            return
        if self.app.dispatcher.ptt_held:
            return
        try:
            await self.act("mute", {"state": "on"})
            self._ptt_muted = True
        except ActionError as exc:
            log.debug("ptt mute not yet possible: %s", exc)

    # -- LEDs -------------------------------------------------------------------------

    def _set_led(self, role: str, pattern: LedPattern) -> None:
        if self.leds is not None:
            self.leds.set(role, pattern)

    def _mic_is_open(self) -> bool:
        tee = getattr(self.app.media, "mic", None)
        return bool(getattr(tee, "is_open", False))

    def _show_state(self, state: str) -> None:
        pattern = STATE_PATTERNS.get(state, OFF)
        if state == ApplianceState.IN_ROOM and self._room_status in ROOM_STATUS_PATTERNS:
            pattern = ROOM_STATUS_PATTERNS[self._room_status]
        self._set_led("status", pattern)

    def _show_level(self, talking: bool, level_dbfs: Any) -> None:
        if not talking:
            self._set_led("level", OFF)
        elif self.leds is not None and self.leds.has_pwm("level") and \
                isinstance(level_dbfs, int | float):
            # -60 dBFS (barely audible) .. 0 dBFS (full scale) -> 10% .. 100% brightness
            self._set_led("level", steady(min(1.0, max(0.1, (level_dbfs + 60) / 60))))
        else:
            self._set_led("level", ON)

    def _show_controls(self, controls: dict[str, Any]) -> None:
        mic_live = controls.get("mic_enabled", True) and not controls.get("deaf", False)
        self._set_led("mute", OFF if mic_live else ON)
        self._set_led("camera", OFF if controls.get("video_enabled", True) else ON)
        if not mic_live:
            self._set_led("level", OFF)


class SimButtons:
    """The ``app.extras["buttons"]`` panel: press the mock buttons from the page or tests.

    It follows the ``gpio`` subsystem across restarts."""

    def __init__(self) -> None:
        self.current: Buttons | None = None

    @property
    def roles(self) -> list[str]:
        return self.current.roles if self.current is not None else []

    def _buttons(self) -> Buttons:
        if self.current is None:
            raise KeyError("the GPIO buttons are not running")
        return self.current

    async def press(self, role: str) -> None:
        buttons = self._buttons()
        buttons.press(role)
        await asyncio.sleep(buttons.bounce_time * 1.5 + 0.005)  # let the press settle

    async def release(self, role: str) -> None:
        buttons = self._buttons()
        buttons.release(role)
        await asyncio.sleep(buttons.bounce_time * 1.5 + 0.005)


def pin_maps(app: Host) -> tuple[dict[str, int], dict[str, int]]:
    """The button and LED pins to use: the config's, or the sim defaults with ``--sim``."""
    gpio = app.config.gpio
    buttons, leds = dict(gpio.buttons), dict(gpio.leds)
    if app.sim and not buttons and not leds:
        buttons, leds = dict(SIM_BUTTONS), dict(SIM_LEDS)
    for role in buttons:
        if role not in BUTTON_ROLES:
            log.warning("gpio.buttons.%s: unknown role, ignored (roles: %s)", role,
                        ", ".join(BUTTON_ROLES))
    for role in leds:
        if role not in LED_ROLES:
            log.warning("gpio.leds.%s: unknown role, ignored (roles: %s)", role,
                        ", ".join(LED_ROLES))
    return ({r: p for r, p in buttons.items() if r in BUTTON_ROLES},
            {r: p for r, p in leds.items() if r in LED_ROLES})


async def run_gpio(app: Host) -> None:
    """The ``gpio`` subsystem: buttons and LEDs until cancelled (idle if none are set)."""
    gpio = app.config.gpio
    button_pins, led_pins = pin_maps(app)
    panel = app.extras.get("buttons")
    if not button_pins and not led_pins:
        log.info("no GPIO buttons or LEDs configured")
        await asyncio.Event().wait()
        return
    check_pins(button_pins, led_pins)
    factory = await asyncio.to_thread(make_factory, gpio.backend, sim=app.sim)  # opens a chip
    buttons = leds = None
    try:
        if button_pins:
            buttons = Buttons(button_pins, factory, active_high=gpio.active_high,
                              pull_up=gpio.pull_up, bounce_time=gpio.bounce_time,
                              hold_time=gpio.hold_time,
                              repeat_interval=gpio.repeat_interval).open()
        if led_pins:
            leds = Leds(led_pins, factory).open()
        if isinstance(panel, SimButtons) and buttons is not None:
            panel.current = buttons
        controls = ButtonControls(app, buttons, leds)
        app.extras["gpio_controls"] = controls
        await controls.run()
    finally:
        if app.extras.get("gpio_controls") is not None and (
                getattr(app.extras["gpio_controls"], "buttons", None) is buttons):
            del app.extras["gpio_controls"]
        if isinstance(panel, SimButtons):
            panel.current = None
        if buttons is not None:
            buttons.close()
        if leds is not None:
            leds.close()
        try:
            factory.close()
        except Exception as exc:
            log.debug("closing the pin factory: %s", exc)
