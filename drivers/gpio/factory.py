"""Pin factories and the checks that run before any pin is claimed.

Devices never touch hardware themselves: they ask one factory for pins. The factory is
chosen by ``gpio.backend``: lgpio on the board, gpiozero's ``MockFactory`` (with PWM
capable mock pins) in simulation and tests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from drivers.errors import EdgeroomError, PinConflict

log = logging.getLogger(__name__)

__all__ = ["BadPinFactory", "GpioError", "PinConflict", "check_pins", "make_factory"]

#: The changes a simulated pin remembers. gpiozero's mock pins keep every one, and a sim
#: box whose LED pulses (reconnecting) or blinks (setup, error) for a day would keep
#: 1.7 million of them.
SIM_PIN_HISTORY = 1000


def _sim_pin_class() -> type:
    """gpiozero's PWM-capable mock pin, remembering only its last changes."""
    from gpiozero.pins.mock import MockPWMPin

    class SimPin(MockPWMPin):
        def _change_state(self, value: float) -> bool:
            changed: bool = super()._change_state(value)
            if len(self.states) > 2 * SIM_PIN_HISTORY:
                del self.states[:-SIM_PIN_HISTORY]
            return changed

    return SimPin


class GpioError(EdgeroomError, RuntimeError):
    """A GPIO device could not be set up (bad pin, pin held elsewhere, ...)."""


class BadPinFactory(EdgeroomError, ImportError):
    """The configured pin factory cannot be loaded on this machine."""


def make_factory(backend: str, sim: bool = False) -> Any:
    """The gpiozero pin factory for ``gpio.backend`` (``auto``, ``lgpio`` or ``mock``).

    ``auto`` is ``mock`` with simulated hardware and ``lgpio`` otherwise. Raises
    :class:`BadPinFactory` with the reason when the factory cannot load.
    """
    if backend == "auto":
        backend = "mock" if sim else "lgpio"
    if backend == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory(pin_class=_sim_pin_class())
    if backend == "lgpio":
        try:
            from gpiozero.pins.lgpio import LGPIOFactory
        except ImportError as exc:
            raise BadPinFactory(
                f"gpio.backend = lgpio: the lgpio module is not installed ({exc}); "
                "install the [pi] extra, or use backend = \"mock\" (run with --sim)") from exc
        try:
            return LGPIOFactory()
        except Exception as exc:
            raise BadPinFactory(
                f"gpio.backend = lgpio: cannot open the GPIO chip ({type(exc).__name__}: "
                f"{exc}); is this a Raspberry Pi and is the service in the gpio group?"
            ) from exc
    raise BadPinFactory(f"gpio.backend = {backend!r}: unknown pin factory "
                        "(allowed: auto, lgpio, mock)")


def check_pins(buttons: Mapping[str, int], leds: Mapping[str, int]) -> None:
    """Raise :class:`PinConflict` naming both roles if a pin is configured twice."""
    seen: dict[int, str] = {}
    for kind, table in (("buttons", buttons), ("leds", leds)):
        for role, pin in table.items():
            name = f"gpio.{kind}.{role}"
            if pin in seen:
                raise PinConflict(f"GPIO{pin} is used twice: {seen[pin]} and {name}")
            seen[pin] = name
