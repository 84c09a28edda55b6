"""The serial control protocol (``docs/serial-protocol.md``) on the serial line driver."""

from services.serial_control.format import ProtocolError
from services.serial_control.session import ControlSession

__all__ = ["ControlSession", "ProtocolError"]
