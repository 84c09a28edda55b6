"""The serial control protocol (``docs/serial-protocol.md``) on the serial line driver."""

# Playbacks, the input sensitivity, devices switched live and the camera have command
# modules of their own: importing them registers their commands in ``COMMANDS``.
from services.serial_control import device_commands, playback_commands  # noqa: F401
from services.serial_control.format import ProtocolError
from services.serial_control.session import ControlSession

__all__ = ["ControlSession", "ProtocolError"]
