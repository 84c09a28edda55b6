"""The appliance as its composition sees it: what the wiring, the GPIO controls and the
health probes read and set on :class:`device.app.Appliance` while they build and run it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from device.actions import Dispatcher
from device.config import Config
from device.providers import StatusProviders
from device.state import StateMachine
from device.supervisor import Supervisor
from drivers.common.bus import EventBus
from services.room.api import RoomSession

if TYPE_CHECKING:
    from services.media.service import MediaService


class Host(Protocol):
    config: Config
    state_dir: Path
    sim: bool
    bus: EventBus
    state: StateMachine
    supervisor: Supervisor
    dispatcher: Dispatcher
    room: RoomSession | None
    media: MediaService | None
    extras: dict[str, Any]
    status_providers: StatusProviders

    def register(self, name: str, factory: Callable[[Any], Awaitable[None]]) -> None:
        """Add a subsystem; ``factory(app)`` runs until cancelled (restarted on failure)."""
        ...
