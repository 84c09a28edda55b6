"""Push buttons on gpiozero: debounced press/release/hold/repeat events on the loop.

gpiozero calls back from its own thread (or, with mock pins, from whoever drives the
pin); every callback hops to the event loop with ``call_soon_threadsafe`` and all timing
(debounce, hold, auto-repeat) runs there on the monotonic clock.

Debouncing is a stable-level filter: after an edge, the level must stay put for
``bounce_time`` seconds before it counts. A glitch shorter than that produces no event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from drivers.gpio.factory import GpioError, check_pins
from drivers.queues import DropOldestQueue

log = logging.getLogger(__name__)

EventKind = Literal["press", "release", "hold", "repeat"]


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    role: str
    kind: EventKind
    held: float = 0.0  # seconds since the press
    count: int = 0  # 1, 2, ... for repeat events


@dataclass
class _Button:
    role: str
    pin: int
    device: Any
    pressed: bool = False  # the debounced state
    level: bool = False  # the level the last edge reported
    pressed_at: float = 0.0
    repeats: int = 0
    settle: asyncio.TimerHandle | None = None
    timer: asyncio.TimerHandle | None = None

    def cancel_timers(self) -> None:
        for handle in (self.settle, self.timer):
            if handle is not None:
                handle.cancel()
        self.settle = self.timer = None


class Buttons:
    """A set of buttons by role. Use as a context manager; ``close()`` is idempotent."""

    def __init__(
        self,
        pins: Mapping[str, int],
        factory: Any,
        *,
        active_high: bool = False,
        pull_up: bool = True,
        bounce_time: float = 0.02,
        hold_time: float = 1.0,
        repeat_interval: float = 0.25,
        queue_size: int = 64,
    ) -> None:
        if pull_up and active_high:
            raise GpioError("gpio.active_high = true needs gpio.pull_up = false: a button on "
                            "the internal pull-up reads low when pressed")
        check_pins(pins, {})
        self.pins = dict(pins)
        self.factory = factory
        self.active_high = active_high
        self.pull_up = pull_up
        self.bounce_time = bounce_time
        self.hold_time = hold_time
        self.repeat_interval = repeat_interval
        self.events: DropOldestQueue[ButtonEvent] = DropOldestQueue(queue_size)
        self._buttons: dict[str, _Button] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def __repr__(self) -> str:
        states = " ".join(f"{b.role}@{b.pin}={'down' if b.pressed else 'up'}"
                          for b in self._buttons.values())
        return f"<Buttons {states or 'closed'}>"

    # -- life cycle -------------------------------------------------------------------

    def open(self, loop: asyncio.AbstractEventLoop | None = None) -> Buttons:
        """Claim the pins; raises :class:`GpioError` (or ``PinConflict``) naming the pin."""
        from gpiozero import DigitalInputDevice
        from gpiozero.exc import GPIOPinInUse, GPIOZeroError

        self._loop = loop or asyncio.get_running_loop()
        self.events.bind(self._loop)
        # pull_up True: internal pull-up, pressed = low. pull_up False + active_high:
        # internal pull-down, pressed = high. pull_up False + active low: an external
        # pull-up, so the pin floats here and pressed = low.
        pull: bool | None = True if self.pull_up else (False if self.active_high else None)
        active_state = None if pull is not None else self.active_high
        try:
            for role, pin in self.pins.items():
                try:
                    device = DigitalInputDevice(pin, pull_up=pull, active_state=active_state,
                                                pin_factory=self.factory)
                except GPIOPinInUse as exc:
                    raise GpioError(f"gpio.buttons.{role}: GPIO{pin} is already in use "
                                    f"({exc})") from exc
                except GPIOZeroError as exc:
                    raise GpioError(f"gpio.buttons.{role}: cannot use GPIO{pin}: "
                                    f"{exc}") from exc
                button = _Button(role, pin, device)
                button.pressed = button.level = bool(device.is_active)
                self._buttons[role] = button
                device.when_activated = self._callback(role, True)
                device.when_deactivated = self._callback(role, False)
        except BaseException:
            self.close()
            raise
        log.info("buttons ready: %s", ", ".join(f"{r}=GPIO{p}" for r, p in self.pins.items()))
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for button in self._buttons.values():
            button.cancel_timers()
            try:
                button.device.close()
            except Exception as exc:  # closing must not fail the caller
                log.warning("closing button %s: %s", button.role, exc)
        self._buttons.clear()
        self.events.close()

    def __enter__(self) -> Buttons:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------

    async def get(self) -> ButtonEvent:
        """The next event; raises ``EOFError`` once closed."""
        return await self.events.get()

    async def __aiter__(self) -> AsyncIterator[ButtonEvent]:
        while True:
            try:
                yield await self.events.get()
            except EOFError:
                return

    @property
    def roles(self) -> list[str]:
        return list(self._buttons)

    def is_pressed(self, role: str) -> bool:
        return self._buttons[role].pressed

    def pin(self, role: str) -> Any:
        """The gpiozero pin object behind ``role`` (mock pins can be driven in tests)."""
        return self._buttons[role].device.pin

    # -- simulation -------------------------------------------------------------------

    def press(self, role: str) -> None:
        """Drive a mock pin to its pressed level (simulated hardware only)."""
        self._drive(role, pressed=True)

    def release(self, role: str) -> None:
        self._drive(role, pressed=False)

    def _drive(self, role: str, pressed: bool) -> None:
        button = self._buttons.get(role)
        if button is None:
            raise KeyError(f"no button {role!r}; configured: {', '.join(self._buttons)}")
        pin = button.device.pin
        if not hasattr(pin, "drive_high"):
            raise GpioError("buttons can only be pressed in software on mock pins")
        high = pressed == self.active_high
        pin.drive_high() if high else pin.drive_low()

    # -- events (on the loop) -----------------------------------------------------------

    def _callback(self, role: str, level: bool) -> Any:
        def changed() -> None:  # gpiozero's thread, or the thread driving a mock pin
            loop = self._loop
            if loop is None or self._closed:
                return
            try:
                loop.call_soon_threadsafe(self._edge, role, level)
            except RuntimeError:
                pass  # the loop has shut down
        return changed

    def _edge(self, role: str, level: bool) -> None:
        button = self._buttons.get(role)
        if button is None or self._loop is None:
            return
        button.level = level
        if button.settle is not None:
            button.settle.cancel()
            button.settle = None
        if self.bounce_time <= 0:
            self._settle(button)
        else:
            button.settle = self._loop.call_later(self.bounce_time, self._settle, button)

    def _settle(self, button: _Button) -> None:
        button.settle = None
        if self._closed or self._loop is None:
            return
        level = button.level
        if level == button.pressed:
            return  # a glitch shorter than bounce_time
        button.pressed = level
        now = time.monotonic()
        if level:
            button.pressed_at = now
            button.repeats = 0
            self._put(ButtonEvent(button.role, "press"))
            button.timer = self._loop.call_later(self.hold_time, self._hold, button)
        else:
            if button.timer is not None:
                button.timer.cancel()
                button.timer = None
            self._put(ButtonEvent(button.role, "release", now - button.pressed_at))

    def _hold(self, button: _Button) -> None:
        if not button.pressed or self._loop is None:
            return
        self._put(ButtonEvent(button.role, "hold", time.monotonic() - button.pressed_at))
        button.timer = self._loop.call_later(self.repeat_interval, self._repeat, button)

    def _repeat(self, button: _Button) -> None:
        if not button.pressed or self._loop is None:
            return
        button.repeats += 1
        self._put(ButtonEvent(button.role, "repeat", time.monotonic() - button.pressed_at,
                              button.repeats))
        button.timer = self._loop.call_later(self.repeat_interval, self._repeat, button)

    def _put(self, event: ButtonEvent) -> None:
        log.debug("button %s %s", event.role, event.kind)
        self.events.put_nowait(event)
