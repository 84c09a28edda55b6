"""Serial line transport on pyserial (device path, pty, or ``loop://``)."""

from drivers.serial.line import SerialLine, serial_ports
from drivers.serial.lines import Line, LineSplitter

__all__ = ["Line", "LineSplitter", "SerialLine", "serial_ports"]
