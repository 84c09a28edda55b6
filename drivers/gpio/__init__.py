"""Buttons and LEDs on gpiozero (lgpio on the board, mock pins in simulation)."""

from drivers.gpio.buttons import ButtonEvent, Buttons
from drivers.gpio.factory import BadPinFactory, GpioError, PinConflict, check_pins, make_factory
from drivers.gpio.leds import OFF, ON, LedPattern, Leds, blink, double_blink, pulse, steady

__all__ = [
    "OFF", "ON", "BadPinFactory", "ButtonEvent", "Buttons", "GpioError", "LedPattern", "Leds",
    "PinConflict", "blink", "check_pins", "double_blink", "make_factory", "pulse", "steady",
]
