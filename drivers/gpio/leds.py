"""LEDs on gpiozero, each showing a pattern: on, off, blink, double blink, pulse, a level.

A pattern is a list of ``(brightness, seconds)`` steps played in a loop (or ``repeat``
times) by one small thread per LED; a steady pattern has no steps and no thread. An LED
on a pin without PWM shows brightness above one half as on, so a pulse degrades to a
blink and a level to on/off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drivers.gpio.factory import GpioError, check_pins

log = logging.getLogger(__name__)

Step = tuple[float, float]  # (brightness 0-1, seconds)


@dataclass(frozen=True)
class LedPattern:
    name: str
    steps: tuple[Step, ...] = ()  # empty: steady at ``value``
    value: float = 0.0  # steady brightness, and the brightness after a finite pattern
    repeat: int | None = None  # None: loop until another pattern is set

    @property
    def duration(self) -> float | None:
        """Seconds a finite pattern plays (None when it loops forever)."""
        if self.repeat is None:
            return None if self.steps else 0.0
        return self.repeat * sum(s for _, s in self.steps)


def steady(value: float, name: str | None = None) -> LedPattern:
    value = max(0.0, min(1.0, float(value)))
    return LedPattern(name or f"level:{value:.2f}", value=value)


def blink(rate_hz: float, duty: float = 0.5, repeat: int | None = None) -> LedPattern:
    """On/off at ``rate_hz`` blinks per second."""
    if rate_hz <= 0:
        raise ValueError("blink rate must be positive")
    period = 1.0 / rate_hz
    return LedPattern(f"blink:{rate_hz:g}", ((1.0, period * duty), (0.0, period * (1 - duty))),
                      repeat=repeat)


def double_blink(period: float = 1.2) -> LedPattern:
    """Two short flashes, then a pause."""
    flash = 0.12
    return LedPattern("double_blink", ((1.0, flash), (0.0, flash), (1.0, flash),
                                       (0.0, period - 3 * flash)))


def pulse(period: float = 2.0, steps: int = 20) -> LedPattern:
    """Fade in and out (PWM); a blink at the same period without PWM."""
    half = period / 2
    ramp = [(i / steps, half / steps) for i in range(1, steps + 1)]
    return LedPattern("pulse", tuple(ramp + [(1 - v, s) for v, s in ramp]))


OFF = steady(0.0, "off")
ON = steady(1.0, "on")


class _Player:
    """Plays one pattern on one gpiozero output device in a thread.

    Stopping a pattern never waits for its thread (it runs on the event loop): the thread
    writes only under ``_lock`` and only while its stop flag is clear, so once
    :meth:`stop` has set the flag under the lock the old thread cannot write again, and it
    exits at its next step.
    """

    def __init__(self, role: str, device: Any, pwm: bool) -> None:
        self.role = role
        self.device = device
        self.pwm = pwm
        self.pattern = OFF
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _write(self, value: float) -> None:
        self.device.value = value if self.pwm else (1 if value > 0.5 else 0)

    def _write_unless(self, stop: threading.Event, value: float) -> bool:
        """Write ``value`` unless ``stop`` is set; False once it is."""
        with self._lock:
            if stop.is_set():
                return False
            self._write(value)
            return True

    def play(self, pattern: LedPattern) -> None:
        self.stop()
        self.pattern = pattern
        if not pattern.steps or pattern.repeat == 0:
            self._write(pattern.value)
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pattern, self._stop),
                                        name=f"led-{self.role}", daemon=True)
        self._thread.start()

    def _run(self, pattern: LedPattern, stop: threading.Event) -> None:
        rounds = 0
        try:
            while not stop.is_set():
                for value, seconds in pattern.steps:
                    if not self._write_unless(stop, value) or stop.wait(seconds):
                        return
                rounds += 1
                if pattern.repeat is not None and rounds >= pattern.repeat:
                    self._write_unless(stop, pattern.value)
                    return
        except Exception as exc:  # a closed device while shutting down
            log.debug("LED %s pattern stopped: %s", self.role, exc)

    def stop(self) -> None:
        with self._lock:  # held by the thread only for one write
            self._stop.set()
        self._thread = None


class Leds:
    """LEDs by role. Use as a context manager; ``close()`` is idempotent."""

    def __init__(self, pins: Mapping[str, int], factory: Any) -> None:
        check_pins({}, pins)
        self.pins = dict(pins)
        self.factory = factory
        self._players: dict[str, _Player] = {}
        self._closed = False

    def __repr__(self) -> str:
        states = " ".join(f"{r}@{p.device.pin}={p.pattern.name}"
                          for r, p in self._players.items())
        return f"<Leds {states or 'closed'}>"

    def open(self) -> Leds:
        """Claim the pins (PWM where the pin can do it); raises :class:`GpioError`."""
        from gpiozero import LED, PWMLED
        from gpiozero.exc import GPIOPinInUse, GPIOZeroError, PinPWMUnsupported

        try:
            for role, pin in self.pins.items():
                try:
                    try:
                        device: Any = PWMLED(pin, pin_factory=self.factory)
                        pwm = True
                    except PinPWMUnsupported:
                        log.warning("LED %s on GPIO%d has no PWM: pulse shows as a blink",
                                    role, pin)
                        device = LED(pin, pin_factory=self.factory)
                        pwm = False
                except GPIOPinInUse as exc:
                    raise GpioError(f"gpio.leds.{role}: GPIO{pin} is already in use "
                                    f"({exc})") from exc
                except GPIOZeroError as exc:
                    raise GpioError(f"gpio.leds.{role}: cannot use GPIO{pin}: {exc}") from exc
                self._players[role] = _Player(role, device, pwm)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def roles(self) -> list[str]:
        return list(self._players)

    def __contains__(self, role: object) -> bool:
        return role in self._players

    def has_pwm(self, role: str) -> bool:
        player = self._players.get(role)
        return player is not None and player.pwm

    def set(self, role: str, pattern: LedPattern) -> None:
        """Show ``pattern`` on ``role`` (ignored for an LED that is not configured)."""
        player = self._players.get(role)
        if player is None or self._closed:
            return
        if player.pattern == pattern and player.pattern.repeat is None:
            return
        log.debug("LED %s -> %s", role, pattern.name)
        player.play(pattern)

    def pattern(self, role: str) -> LedPattern:
        return self._players[role].pattern

    def pin(self, role: str) -> Any:
        return self._players[role].device.pin

    def snapshot(self) -> dict[str, str]:
        return {role: p.pattern.name for role, p in self._players.items()}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for player in self._players.values():
            player.stop()
            try:
                player.device.close()
            except Exception as exc:
                log.warning("closing LED %s: %s", player.role, exc)
        self._players.clear()

    def __enter__(self) -> Leds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
