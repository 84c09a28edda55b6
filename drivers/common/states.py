"""The appliance's top-level states, as published in ``state`` events and the status."""

from __future__ import annotations

import enum


class ApplianceState(enum.StrEnum):
    SETUP = "setup"  # no usable config yet (first boot, after a factory reset)
    IDLE = "idle"  # ready, not in a room
    JOINING = "joining"
    IN_ROOM = "in_room"
    RECONNECTING = "reconnecting"
    ERROR = "error"  # needs attention (wrong pin, no such room, broken hardware)
