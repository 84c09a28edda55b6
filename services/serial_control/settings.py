"""What the serial control line reads: :class:`SerialControlSettings`.

The appliance builds it from ``[serial]`` of its config (``device/settings.py``) each time
the ``serial`` subsystem starts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SerialControlSettings:
    #: the device path or pyserial URL (``loop://``); None: the line is off
    port: str | None
    #: 8N1 at this rate
    baudrate: int
