"""Devices switched live: another mic, speaker or camera while in a room, without leaving.

The ``device`` action opens the chosen device and hands it over while the old one still
runs (the mic tee, the speaker under the room's mix, the camera under the shared
encoder), so the room sees one stream with at most a short gap. When the mic or speaker
in use disappears (``device-lost`` from its driver), the next one the inventory lists is
taken. Every change is published as ``devices-updated`` ``{"kind", "from", "to",
"reason"}`` (``reason``: ``chosen`` or ``lost``). A choice lasts until the appliance
restarts or a saved config change touches that kind of device (then the config's
device is used again); the config keys keep their values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from drivers.common.actions import ActionError

if TYPE_CHECKING:
    from device.config import Config
    from device.host import Host
    from drivers.common.bus import Event

log = logging.getLogger(__name__)

KINDS = ("mic", "speaker", "camera")
#: The inventory's list of each kind (``edgeroom devices --json``).
INVENTORY_KEYS = {"mic": "microphones", "speaker": "speakers", "camera": "cameras"}
SIM_MIC = re.compile(r"^(tone:\d+(\.\d+)?|silence|.+\.wav)$")


class DeviceSwitcher:
    def __init__(self, app: Host) -> None:
        self.app = app
        self.current: dict[str, str] = {}
        #: what opened each device before a switch: back to it when the config changes
        self._configured: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<DeviceSwitcher {self.current}>"

    # -- which device -------------------------------------------------------------------

    def _sim(self, kind: str) -> bool:
        from device import settings
        from drivers.audio import choose_backend as audio_backend
        from drivers.camera import choose_backend as camera_backend

        config, sim = self.app.config, self.app.sim
        if kind == "camera":
            return camera_backend(settings.camera(config), sim=sim)[0] == "sim"
        return audio_backend(settings.audio_devices(config), sim=sim)[0] == "sim"

    def in_use(self, kind: str) -> str:
        """The id of the device of ``kind`` in use (chosen live, else configured)."""
        if kind in self.current:
            return self.current[kind]
        c = self.app.config
        sim = self._sim(kind)
        if kind == "mic":
            return c.sim.mic if sim else c.audio.mic_device
        if kind == "speaker":
            return c.sim.speaker if sim else c.audio.speaker_device
        return c.sim.camera if sim else c.video.device

    def status(self) -> dict[str, str]:
        return {kind: self.in_use(kind) for kind in KINDS}

    def _config_for(self, kind: str, device_id: str) -> Config:
        c = self.app.config
        if kind == "mic":
            if self._sim(kind):
                if not SIM_MIC.match(device_id):
                    raise ActionError("BAD_ARGUMENT", 'a sim mic is "tone:<hz>", "silence" '
                                                      "or a WAV path")
                return dataclasses.replace(c, sim=dataclasses.replace(c.sim, mic=device_id))
            return dataclasses.replace(c, audio=dataclasses.replace(c.audio,
                                                                    mic_device=device_id))
        if kind == "speaker":
            if self._sim(kind):
                if not device_id.endswith(".wav") or ".." in device_id:
                    raise ActionError("BAD_ARGUMENT", "a sim speaker is a WAV file in the "
                                                      "state dir")
                return dataclasses.replace(c, sim=dataclasses.replace(c.sim, speaker=device_id))
            return dataclasses.replace(c, audio=dataclasses.replace(c.audio,
                                                                    speaker_device=device_id))
        if self._sim(kind):
            if device_id != "pattern":
                raise ActionError("BAD_ARGUMENT", 'the sim camera is "pattern"')
            return c
        return dataclasses.replace(c, video=dataclasses.replace(c.video, device=device_id))

    # -- switching ----------------------------------------------------------------------

    async def switch(self, kind: str, device_id: str, reason: str = "chosen") -> dict[str, Any]:
        async with self._lock:
            before = self.in_use(kind)
            self._require(kind)
            config = self._config_for(kind, device_id)
            switch = {"mic": self._switch_mic, "speaker": self._switch_speaker,
                      "camera": self._switch_camera}[kind]
            live = await switch(config)
            self.current[kind] = device_id
        log.info("%s: %s -> %s (%s%s)", kind, before, device_id, reason,
                 ", live" if live else "")
        change = {"kind": kind, "from": before, "to": device_id, "reason": reason,
                  "live": live}
        self.app.bus.publish("devices-updated", change)
        return change

    def _require(self, kind: str) -> None:
        """NO_DEVICE when nothing of ``kind`` can be switched on this box now."""
        media = self.app.media
        holder = {"mic": getattr(media, "mic", None),
                  "speaker": getattr(getattr(self.app.room, "speaker", None), "replace_sink",
                                     None),
                  "camera": getattr(media, "video", None)}[kind]
        if holder is None:
            raise ActionError("NO_DEVICE", f"this box has no {kind} to switch")

    async def _switch_mic(self, config: Config) -> bool:
        from device.settings import audio_devices
        from drivers.audio import open_mic

        media: Any = self.app.media
        tee = media.mic
        self._configured.setdefault("mic", tee.source_factory)
        app = self.app
        devices = audio_devices(config)
        factory: Callable[[], Any] = lambda: open_mic(devices, app.state_dir, sim=app.sim,  # noqa: E731
                                                      emit=app.bus.publish)
        return bool(await tee.switch(factory))

    async def _switch_speaker(self, config: Config) -> bool:
        from device.settings import audio_devices
        from drivers.audio import open_speaker

        replace_sink = self.app.room.speaker.replace_sink  # type: ignore[union-attr]
        sink = open_speaker(audio_devices(config), self.app.state_dir, sim=self.app.sim,
                            emit=self.app.bus.publish)
        return bool(await replace_sink(sink))

    async def _switch_camera(self, config: Config) -> bool:
        from device.settings import camera as camera_settings
        from drivers.camera import open_camera
        from services.media.orient import OrientedCamera

        media: Any = self.app.media
        self._configured.setdefault("camera", media.video.camera_factory)
        orientation = getattr(media, "orientation", None)
        app = self.app

        def camera() -> Any:
            opened = open_camera(camera_settings(config), sim=app.sim, emit=app.bus.publish)
            return opened if orientation is None else OrientedCamera(opened, orientation)

        return bool(await media.video.switch_camera(camera))

    # -- a device that disappears -------------------------------------------------------

    def next_device(self, kind: str, lost: str) -> str | None:
        """The first device of ``kind`` the inventory lists that is not ``lost``
        (``default`` when it lists none)."""
        provider = self.app.status_providers.get("devices")
        inventory = (provider() if provider is not None else None) or {}
        listed = (inventory.get(INVENTORY_KEYS[kind]) or {}).get("devices") or []
        for entry in listed:
            device_id = str(entry.get("id", ""))
            if device_id and device_id != lost:
                return device_id
        return "default" if lost != "default" else None

    def config_changed(self, sections: set[str]) -> None:
        """A saved config change names the devices again: the live choices of the kinds
        it touches end, and the restarted subsystems open what the config says."""
        media: Any = self.app.media
        for kind in KINDS:
            if not sections & ({"video", "sim"} if kind == "camera" else {"audio", "sim"}):
                continue
            if self.current.pop(kind, None) is None:
                continue
            configured = self._configured.pop(kind, None)
            if configured is not None and kind == "mic":
                media.mic.source_factory = configured
            elif configured is not None and kind == "camera":
                media.video.camera_factory = configured
            log.info("%s: back to the configured %s", kind, self.in_use(kind))

    def on_event(self, event: Event) -> None:
        if event.name == "config-changed":
            self.config_changed(set(event.data.get("sections", ())))
            return
        if event.name != "device-lost" or event.data.get("kind") not in ("mic", "speaker"):
            return
        kind = str(event.data["kind"])
        lost = str(event.data.get("device", ""))
        if lost != self.in_use(kind):
            return
        fallback = self.next_device(kind, lost)
        if fallback is None:
            log.warning("%s %s lost and no other to fall back to", kind, lost)
            return
        task = asyncio.create_task(self._fall_back(kind, fallback), name=f"devices:{kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fall_back(self, kind: str, device_id: str) -> None:
        try:
            await self.switch(kind, device_id, reason="lost")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the driver keeps retrying the lost one meanwhile
            log.warning("%s: falling back to %s failed: %s", kind, device_id, exc)


def compose(app: Host) -> None:
    switcher = DeviceSwitcher(app)
    app.dispatcher.devices = switcher
    app.status_providers.add("devices_in_use", switcher.status)
    app.bus.add_listener(switcher.on_event)
