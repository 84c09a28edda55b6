"""Which subsystems the appliance runs, built from its config.

This is the only module that knows every service; each service exposes one coroutine
that runs until cancelled, and this module registers it under its subsystem name
(the names config keys use in ``restart=``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from device.app import Appliance

log = logging.getLogger(__name__)


def compose(app: Appliance) -> None:
    """Register the subsystems ``app.config`` asks for."""
