"""The page's facilities: what the composition registers in ``Appliance.extras`` by name.

``app.extras["buttons"]``
    The simulated GPIO buttons (``--sim``), shown as on-page virtual buttons: an object
    with ``roles`` (the button roles, e.g. ``["call", "mute"]``) and ``press(role)`` /
    ``release(role)`` (plain or ``async``). Unknown roles raise ``KeyError``.
``app.extras["snapshot"]``
    The camera preview: an object with ``snapshot_jpeg()`` (plain or ``async``) that
    returns the latest camera frame as JPEG bytes, or ``None`` while there is none.
``app.extras["mic_users"]``
    The shared microphone's users: an object with ``async acquire(name)`` and
    ``async release(name)``; the page's level meter holds the mic open through it.
``app.extras["preview"]``
    The live camera preview over WebRTC (:class:`services.web.preview.CameraPreview`).

Each is read through its typed accessor below (an entry of the wrong shape counts as
absent) and is never called. What a service adds to the status is a status provider
(``app.status_providers``, :mod:`device.providers`), not an extra.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

BUTTONS = "buttons"
SNAPSHOT = "snapshot"
MIC_USERS = "mic_users"


@runtime_checkable
class VirtualButtons(Protocol):
    @property
    def roles(self) -> Any: ...

    def press(self, role: str) -> Any: ...

    def release(self, role: str) -> Any: ...


@runtime_checkable
class SnapshotProvider(Protocol):
    def snapshot_jpeg(self) -> Any: ...


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def buttons_of(extras: dict[str, Any]) -> VirtualButtons | None:
    panel = extras.get(BUTTONS)
    return panel if isinstance(panel, VirtualButtons) else None


def button_roles(extras: dict[str, Any]) -> list[str]:
    panel = buttons_of(extras)
    if panel is None:
        return []
    try:
        return sorted(str(r) for r in panel.roles)
    except TypeError:
        return []


def snapshot_of(extras: dict[str, Any]) -> SnapshotProvider | None:
    provider = extras.get(SNAPSHOT)
    return provider if isinstance(provider, SnapshotProvider) else None


@runtime_checkable
class MicUsers(Protocol):
    async def acquire(self, name: str) -> None: ...

    async def release(self, name: str) -> None: ...


def mic_users_of(extras: dict[str, Any]) -> MicUsers | None:
    users = extras.get(MIC_USERS)
    return users if isinstance(users, MicUsers) else None
