"""The composition root: builds drivers and services from config and runs them.

Every subsystem runs as one named task under the :class:`Supervisor`; the event bus
carries every change to every surface; the state machine drives the top level.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device import __version__, logs
from device import config as config_mod
from device.actions import Dispatcher
from device.config import Config
from device.control_socket import SOCKET_NAME, ControlSocket
from device.notify import Notifier, watchdog_interval, watchdog_loop
from device.providers import StatusProviders
from device.state import ApplianceState, StateMachine
from device.supervisor import Supervisor
from drivers.common.atomicfile import remove_stale_temps
from drivers.common.bus import Event, EventBus
from services.room.api import RoomSession, RoomState

log = logging.getLogger(__name__)

#: Room session state -> appliance state.
_ROOM_TO_APPLIANCE = {
    RoomState.IDLE: ApplianceState.IDLE,
    RoomState.JOINING: ApplianceState.JOINING,
    RoomState.IN_ROOM: ApplianceState.IN_ROOM,
    RoomState.RECONNECTING: ApplianceState.RECONNECTING,
    RoomState.ERROR: ApplianceState.ERROR,
}

#: Files in the state dir that a factory reset erases (secrets and identity).
SECRET_FILES = ("web-password.hash", "tls-key.pem", "tls-cert.pem")

#: Config scopes that are not a subsystem of their own -> the subsystems that apply them
#: (the mic is read by the media subsystem's tee, the speaker belongs to the room).
SCOPE_SUBSYSTEMS: dict[str, tuple[str, ...]] = {"audio": ("video", "room")}

SubsystemFactory = Callable[["Appliance"], Awaitable[None]]


class Appliance:
    def __init__(self, config: Config, config_path: Path, state_dir: Path, *,
                 sim: bool = False, notifier: Notifier | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.state_dir = state_dir
        self.sim = sim
        self.started_at = time.monotonic()
        self.bus = EventBus()
        self.notifier = notifier or Notifier()
        self.state = StateMachine(ApplianceState.IDLE, self._on_state_change)
        self.supervisor = Supervisor(emit=self.bus.publish)
        self.room: RoomSession | None = None
        #: Recording, streaming and the shared encoders (set by the wiring).
        self.media: MediaService | None = None
        self.dispatcher = Dispatcher(None, emit=self.bus.publish,
                                     factory_reset=self.factory_reset,
                                     default_stream_url=lambda: self.config.stream.rtmp_url)
        #: What services add to the status, by name (see :mod:`device.providers`).
        self.status_providers = StatusProviders()
        #: The page's facilities by name (:mod:`services.web.extras`); never called.
        self.extras: dict[str, Any] = {}
        self._subsystems: dict[str, SubsystemFactory] = {}
        self._stop = asyncio.Event()
        self._config_lock = asyncio.Lock()
        self.reset_task: asyncio.Task[None] | None = None
        self.bus.add_listener(self._on_event)

    def __repr__(self) -> str:
        return f"<Appliance {self.state.state} sim={self.sim} state_dir={self.state_dir}>"

    # -- composition ------------------------------------------------------------------

    def register(self, name: str, factory: SubsystemFactory) -> None:
        """Add a subsystem; ``factory(app)`` runs until cancelled (restarted on failure)."""
        self._subsystems[name] = factory

    def _compose(self) -> None:
        """Build the subsystems the config asks for."""
        from device import wiring

        wiring.compose(self)

    # -- state ------------------------------------------------------------------------

    def _on_state_change(self, old: ApplianceState, new: ApplianceState, reason: str) -> None:
        self.bus.publish("state", {"old": str(old), "new": str(new), "reason": reason})
        self.notifier.status(f"{new}{': ' + reason if reason else ''}")

    def _on_event(self, event: Event) -> None:
        if event.name == "room-state":
            new = _ROOM_TO_APPLIANCE.get(RoomState(event.data["new"]))
            if new is not None and self.state.state != ApplianceState.SETUP:
                self.state.set(new, str(event.data.get("reason", "")))

    # -- status and config ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        room: dict[str, Any] = {"id": self.config.room.room, "backend": self.config.room.backend,
                                "state": None, "members": [], "controls": None,
                                "video_codec": None, "audio_codec": None, "warnings": [],
                                "speaker": None}
        stats: dict[str, Any] = {}
        if self.room is not None:
            # the room it is in (a join may name another), as its server names it
            room["id"] = getattr(self.room, "room_number", room["id"])
            room["state"] = str(self.room.state)
            room["members"] = [m.to_dict() for m in self.room.members()]
            room["controls"] = self.room.controls.to_dict()
            room["video_codec"] = getattr(self.room, "video_codec", None)
            room["audio_codec"] = getattr(self.room, "audio_codec", None)
            room["warnings"] = list(getattr(self.room, "warnings", []))
            room["speaker"] = getattr(self.room, "speaker_state", None)
            stats = self.room.stats()
        return {
            "state": str(self.state.state),
            "reason": self.state.reason,
            "version": __version__,
            "uptime": round(time.monotonic() - self.started_at, 1),
            "sim": self.sim,
            "room": room,
            "stats": stats,
            "subsystems": self.supervisor.snapshot(),
            "health": self.health(),
            "devices": {},
            **self.status_providers.collect(),
        }

    def health(self) -> dict[str, Any]:
        """The watchdog's probes as of now; ``healthy`` is what the next ping would do."""
        probes = self.supervisor.probes()
        return {"healthy": all(p["ok"] for p in probes), "probes": probes}

    # -- what the page needs (services.web.host.PageHost) --------------------------------

    @property
    def version(self) -> str:
        return __version__

    def config_schema(self) -> list[dict[str, Any]]:
        return config_mod.describe()

    def restart_scopes(self, old: Any, new: Any) -> set[str]:
        return config_mod.restart_scopes(old, new)

    def secrets(self) -> list[str]:
        """The values of the config's secret keys (PIN, tokens, the RTMP URL with its key),
        longest first: a longer secret may contain a shorter one."""
        out = []
        for section, key in _secret_keys():
            value = getattr(getattr(self.config, section), key)
            if isinstance(value, str) and len(value) >= 4:
                out.append(value)
        for section, key in _array_secret_keys():  # [[link]] tables
            for item in getattr(self.config, section):
                value = getattr(item, key)
                if isinstance(value, str) and len(value) >= 4:
                    out.append(value)
        return sorted(out, key=len, reverse=True)

    def log_lines(self) -> list[str]:
        return list(logs.RING.lines)

    async def update_config(self, patch: dict[str, dict[str, Any]]) -> Config:
        """Validate, save atomically, and restart only the subsystems the change touches."""
        async with self._config_lock:  # changes apply one at a time, none is lost
            old = self.config
            new = old.replace(patch)
            scopes = config_mod.restart_scopes(old, new)
            await asyncio.to_thread(config_mod.save, self.config_path, new, old)
            self.config = new
        names = sorted({name for scope in scopes
                        for name in SCOPE_SUBSYSTEMS.get(scope, (scope,))})
        self.bus.publish("config-changed", {"sections": sorted(patch), "restart": names})
        for name in names:
            if name in self.supervisor.subsystems:
                await self.supervisor.restart(name)
        if self.state.state == ApplianceState.SETUP:
            self.state.set(ApplianceState.IDLE, "configured")
        return new

    async def factory_reset(self) -> None:
        """Erase config and secrets atomically, then restart into ``setup``."""
        log.warning("factory reset")
        self.bus.publish("factory-reset", {})
        if self.room is not None:
            await self.room.leave()
        await asyncio.to_thread(self._erase)
        # The pin map and serial port describe the box itself, not the owner's choices:
        # they stay in effect (not on disk) so that the LEDs show setup and the buttons
        # and serial line keep working until the box is configured again.
        self.config = Config(gpio=self.config.gpio, serial=self.config.serial)
        self.state.set(ApplianceState.SETUP, "factory reset")
        # Restart every subsystem from a task of our own: the caller (a button, the
        # serial line, the page) runs inside one of them and still gets to reply.
        if self.reset_task is None or self.reset_task.done():
            self.reset_task = asyncio.create_task(self._restart_all(), name="factory-reset")

    def _erase(self) -> None:
        """Delete the config and the secrets (blocking: run it in a thread)."""
        # Move the doomed files into a trash dir first (renames are atomic), then delete.
        trash = self.state_dir / ".reset-trash"
        trash.mkdir(parents=True, exist_ok=True)
        doomed = [self.config_path] + [self.state_dir / name for name in SECRET_FILES]
        for path in doomed:
            try:
                os.replace(path, trash / f"{path.parent.name}-{path.name}")
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("factory reset could not remove %s: %s", path, exc)
        shutil.rmtree(trash, ignore_errors=True)

    async def _restart_all(self) -> None:
        await asyncio.sleep(0.1)  # let the caller's reply go out first
        for name in list(self.supervisor.subsystems):
            await self.supervisor.restart(name)
        self.bus.publish("factory-reset-done", {"state": str(self.state.state)})

    # -- running ----------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.bus.bind(loop)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.config_path)  # left by a save that was killed half-way
        if not self.config_path.exists() and not self.sim:
            self.state.set(ApplianceState.SETUP, "no config yet")
        from device import wiring

        await asyncio.to_thread(wiring.import_services, self.config.room.auto_join)
        self._compose()
        for name, factory in self._subsystems.items():
            self.supervisor.add(name, _bind(factory, self))
        control = ControlSocket(self.state_dir / SOCKET_NAME, self._control_answer)
        try:
            await control.start()
        except OSError as exc:
            log.error("control socket %s: %s (edgeroom doctor cannot reach this process)",
                      control.path, exc)
        interval = watchdog_interval()
        watchdog: asyncio.Task[None] | None = None
        if interval is not None:
            watchdog = asyncio.create_task(
                watchdog_loop(self.notifier, interval, self.supervisor.healthy), name="watchdog")
        self.notifier.ready(str(self.state.state))
        self.bus.publish("ready", {"version": __version__, "sim": self.sim})
        log.info("edgeroom %s up (%s), state dir %s", __version__,
                 "simulated hardware" if self.sim else "hardware", self.state_dir)
        try:
            await self._stop.wait()
        finally:
            log.info("stopping")
            self.notifier.stopping()
            if watchdog is not None:
                watchdog.cancel()
                await asyncio.gather(watchdog, return_exceptions=True)
            if self.reset_task is not None:
                self.reset_task.cancel()
                await asyncio.gather(self.reset_task, return_exceptions=True)
            await self.dispatcher.close()
            if self.room is not None:
                try:
                    await asyncio.wait_for(self.room.close(), 1.5)
                except (TimeoutError, Exception) as exc:
                    log.warning("room close: %s", exc)
            await self.supervisor.stop()
            await control.close()
            self.notifier.close()

    def _control_answer(self, what: str) -> dict[str, Any]:
        """The control socket's ``{"get": "health"}`` (see :mod:`device.control_socket`)."""
        return {"pid": os.getpid(), "version": __version__, "state": str(self.state.state),
                "uptime": round(time.monotonic() - self.started_at, 1),
                "health": self.health()}


@functools.cache
def _secret_keys() -> tuple[tuple[str, str], ...]:
    return tuple((row["key"].split(".", 1)[0], row["key"].split(".", 1)[1])
                 for row in config_mod.describe() if row.get("secret") and not row.get("array"))


@functools.cache
def _array_secret_keys() -> tuple[tuple[str, str], ...]:
    return tuple((row["key"].split(".", 1)[0], row["key"].split(".", 1)[1])
                 for row in config_mod.describe() if row.get("secret") and row.get("array"))


def _bind(factory: SubsystemFactory, app: Appliance) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await factory(app)
    return run


if TYPE_CHECKING:
    from device.host import Host
    from services.media.service import MediaService
    from services.web.host import PageHost

    def _is_page_host(app: Appliance) -> PageHost:
        return app  # the Appliance is what the page is served for

    def _is_host(app: Appliance) -> Host:
        return app  # ... and what the wiring builds on
