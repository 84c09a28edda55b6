"""Status providers: what services add to the appliance's status, registered by name.

``Appliance.status()`` calls each provider and puts its answer under its name (``media``,
``sfu``, ``devices``); a provider that fails is logged and shows as null, and never
takes the status down with it. Only registered providers are called: the page's
facilities in ``Appliance.extras`` (buttons, snapshot, preview, mic users) never are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("device.app")

#: A provider takes no arguments and returns its part of the status (JSON-safe values).
StatusProvider = Callable[[], Any]


class StatusProviders:
    """Providers by name; adding one under a taken name replaces it."""

    def __init__(self) -> None:
        self._providers: dict[str, StatusProvider] = {}

    def __repr__(self) -> str:
        return f"<StatusProviders {sorted(self._providers)}>"

    def add(self, name: str, provider: StatusProvider) -> None:
        if not callable(provider):
            raise TypeError(f"status provider {name!r} must be callable, got {provider!r}")
        self._providers[name] = provider

    def get(self, name: str) -> StatusProvider | None:
        return self._providers.get(name)

    def remove(self, name: str) -> None:
        self._providers.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._providers))

    def collect(self) -> dict[str, Any]:
        """Every provider's answer by name; one that raises gives None (and a log line)."""
        out: dict[str, Any] = {}
        for name, provider in list(self._providers.items()):
            try:
                out[name] = provider()
            except Exception:
                log.exception("status of %s failed", name)
                out[name] = None
        return out
