"""What the config page needs from the appliance it serves, and nothing more.

The page runs actions, reads the status, reads and changes the config and follows the
events; :class:`device.app.Appliance` satisfies :class:`PageHost`, and a test may hand the
server anything else that does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from drivers.common.bus import EventBus


class WebSettings(Protocol):
    """The ``[web]`` section as the page reads it."""

    @property
    def listen(self) -> str: ...
    @property
    def https(self) -> bool: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def header_seconds(self) -> float: ...
    @property
    def body_seconds(self) -> float: ...
    @property
    def login_failures(self) -> int: ...
    @property
    def login_failures_total(self) -> int: ...


class PageConfig(Protocol):
    """The appliance's config: shown (secrets redacted), checked and changed by patches."""

    @property
    def web(self) -> WebSettings: ...

    def to_dict(self, redact: bool = False) -> dict[str, Any]: ...

    def replace(self, patch: Mapping[str, Any]) -> PageConfig: ...


class RoomControls(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class Room(Protocol):
    @property
    def controls(self) -> RoomControls: ...


class ActionRunner(Protocol):
    """Runs one action by name (arguments validated there, failures as ``ActionError``)."""

    @property
    def room(self) -> Room | None: ...

    async def dispatch(self, name: str, args: dict[str, Any] | None = None, *,
                       source: str = ...) -> dict[str, Any]: ...


class PageHost(Protocol):
    """The appliance as the page sees it."""

    @property
    def sim(self) -> bool: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def version(self) -> str: ...
    @property
    def config(self) -> PageConfig: ...
    @property
    def bus(self) -> EventBus: ...
    @property
    def dispatcher(self) -> ActionRunner: ...
    @property
    def extras(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    async def update_config(self, patch: dict[str, dict[str, Any]]) -> PageConfig: ...

    def config_schema(self) -> list[dict[str, Any]]:
        """One row per key (``key``, ``type``, ``default``, ``doc``, ``secret``, ...)."""
        ...

    def restart_scopes(self, old: PageConfig, new: PageConfig) -> set[str]:
        """The subsystems a change from ``old`` to ``new`` restarts."""
        ...

    def secrets(self) -> list[str]:
        """The current values of the secret keys, longest first (for scrubbing)."""
        ...

    def log_lines(self) -> list[str]:
        """The recent log lines, oldest first."""
        ...
