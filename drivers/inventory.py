"""What hardware this machine has, and which backend the appliance would use for each kind.

:func:`list_devices` answers ``edgeroom devices [--json]`` (the JSON shape is documented in
docs/devices.md); :class:`DeviceWatcher` notices sound cards, cameras and serial ports
appearing and disappearing and emits ``devices-changed``.
"""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.audio.settings import AudioDeviceSettings
from drivers.base import Emit
from drivers.camera import choose_backend
from drivers.camera.devices import list_libcamera_cameras, list_video_nodes
from drivers.camera.settings import CameraSettings

log = logging.getLogger(__name__)

KINDS = ("microphones", "speakers", "cameras", "serial_ports", "gpio")
_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(.*?)\s+-\s+(.*)$")
_CONSOLE = re.compile(r"^tty(\d*|printk)$")


@dataclass(frozen=True)
class InventorySettings:
    """The devices the appliance is set to use, which the inventory checks for."""

    audio: AudioDeviceSettings
    camera: CameraSettings
    #: the serial control line's port (None: off)
    serial_port: str | None
    #: ``auto``, ``lgpio`` or ``mock``
    gpio_backend: str


def _entry(backend: str, configured: Any, present: bool | None, reason: str,
           devices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"backend": backend, "configured": configured, "present": present,
            "reason": reason, "devices": devices}


# --------------------------------------------------------------------------- audio


def _proc_cards(asound_dir: str = "/proc/asound") -> list[dict[str, Any]]:
    """Sound cards from /proc/asound/cards (used when the audio driver offers no listing)."""
    try:
        lines = Path(asound_dir, "cards").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    cards = []
    for line in lines:
        m = _CARD_LINE.match(line)
        if m:
            cards.append({"index": int(m.group(1)), "id": m.group(2), "name": m.group(4)})
    return cards


def _audio_devices() -> dict[str, list[dict[str, Any]]]:
    """Capture and playback devices as ``{"id", "name", ...}`` dicts."""
    try:
        from drivers.audio import inventory as audio_inventory
    except ImportError:
        audio_inventory = None  # type: ignore[assignment]
    if audio_inventory is not None and hasattr(audio_inventory, "audio_devices"):
        found = audio_inventory.audio_devices()
        return {kind: [{"id": d["name"], "name": d.get("description", d["name"]),
                        **{k: v for k, v in d.items() if k not in ("name", "description")}}
                       for d in found.get(kind, [])]
                for kind in ("microphones", "speakers")}
    cards = [{"id": f"plughw:{c['index']},0", "name": c["name"], "kind": "hw",
              "card": c["index"], "card_id": c["id"]} for c in _proc_cards()]
    return {"microphones": cards, "speakers": list(cards)}


def _audio_present(configured: str, devices: list[dict[str, Any]]) -> bool | None:
    m = re.match(r"^(?:plug)?hw:(\d+)(?:,(\d+))?$", configured)
    if m:
        card, dev = int(m.group(1)), int(m.group(2) or 0)
        return any(d.get("card") == card and d.get("device", 0) == dev for d in devices)
    return None  # a PCM name (default, an asoundrc entry): only opening it tells


def _audio(audio: AudioDeviceSettings, sim: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    found = _audio_devices()
    wanted = audio.backend
    backend = wanted if wanted != "auto" else ("sim" if sim else "alsa")
    reason = f'audio.backend = "{wanted}"' if wanted != "auto" else (
        "auto with --sim" if sim else "auto")
    out = []
    for kind, configured, sim_source in (
        ("microphones", audio.mic_device, audio.sim_mic),
        ("speakers", audio.speaker_device, audio.sim_speaker),
    ):
        devices = found[kind]
        if backend == "sim":
            out.append(_entry("sim", sim_source, True, reason, devices))
        else:
            out.append(_entry("alsa", configured, _audio_present(configured, devices),
                              reason, devices))
    return out[0], out[1]


# --------------------------------------------------------------------------- camera


def _cameras(camera: CameraSettings, sim: bool) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {"id": n.path, "name": n.name, "api": "v4l2"} for n in list_video_nodes()
    ]
    libcamera = list_libcamera_cameras()
    for cam in libcamera or []:
        devices.append({"id": f"libcamera:{cam['number']}", "name": cam["model"],
                        "api": "libcamera", "camera_id": cam["id"],
                        "location": cam["location"]})
    backend, reason = choose_backend(camera, sim=sim)
    if backend == "sim":
        return _entry("sim", camera.sim_pattern, True, reason, devices)
    if backend == "picamera2":
        return _entry("picamera2", "libcamera:0", bool(libcamera), reason, devices)
    return _entry("v4l2", camera.device, os.path.exists(camera.device), reason, devices)


# --------------------------------------------------------------------------- serial


def _serial_ports(configured: str | None) -> dict[str, Any]:
    devices: dict[str, dict[str, Any]] = {}
    try:
        from serial.tools import list_ports

        for port in list_ports.comports():
            devices[port.device] = {"id": port.device, "name": port.description,
                                    "hwid": port.hwid}
    except Exception as exc:  # a broken sysfs entry must not break the inventory
        log.warning("serial port listing failed: %s", exc)
    extra = glob.glob("/dev/ttyAMA*") + glob.glob("/dev/serial*") + glob.glob("/dev/serial/*/*")
    for path in sorted(extra):
        if path in devices or os.path.isdir(path):
            continue
        target = os.path.realpath(path)
        devices[path] = {"id": path, "name": f"-> {target}" if target != path else "",
                         "hwid": ""}
    listed = sorted(devices.values(), key=lambda d: str(d["id"]))
    if configured is None:
        return _entry("off", None, None, "serial.port is unset", listed)
    if "://" in configured:
        return _entry("pyserial", configured, None, "pyserial URL", listed)
    return _entry("pyserial", configured, os.path.exists(configured), "device path", listed)


# --------------------------------------------------------------------------- gpio


def _gpio(wanted: str, sim: bool) -> dict[str, Any]:
    chips = sorted(glob.glob("/dev/gpiochip*"))
    devices = [{"id": chip, "name": _chip_label(chip)} for chip in chips]
    importable = importlib.util.find_spec("lgpio") is not None
    usable = importable and bool(chips)
    why_not = ("lgpio is not installed" if not importable
               else "no /dev/gpiochip* on this machine")
    if wanted == "mock":
        return _entry("mock", wanted, True, 'gpio.backend = "mock"', devices)
    if wanted == "lgpio":
        reason = 'gpio.backend = "lgpio"' + ("" if usable else f", but {why_not}")
        return _entry("lgpio", wanted, usable, reason, devices)
    if sim:
        return _entry("mock", wanted, True, "auto with --sim", devices)
    # the pin factory (drivers.gpio.factory) resolves auto without --sim to lgpio
    if usable:
        return _entry("lgpio", wanted, True, f"auto: lgpio imports and {chips[0]} exists",
                      devices)
    return _entry("lgpio", wanted, False,
                  f'auto: {why_not}; set gpio.backend = "mock" or run with --sim', devices)


def _chip_label(chip: str) -> str:
    name = os.path.basename(chip)
    for base in ("/sys/bus/gpio/devices", "/sys/class/gpio"):
        try:
            return Path(base, name, "label").read_text(encoding="utf-8").strip()
        except OSError:
            continue
    return ""


# --------------------------------------------------------------------------- public


def list_devices(settings: InventorySettings, *, sim: bool = False) -> dict[str, Any]:
    """Every microphone, speaker, camera, serial port and the GPIO chips, and for each kind
    the backend the appliance would use with ``settings`` (see docs/devices.md;
    ``edgeroom devices`` prints it)."""
    microphones, speakers = _audio(settings.audio, sim)
    return {
        "sim": sim,
        "microphones": microphones,
        "speakers": speakers,
        "cameras": _cameras(settings.camera, sim),
        "serial_ports": _serial_ports(settings.serial_port),
        "gpio": _gpio(settings.gpio_backend, sim),
    }


def render_text(inventory: dict[str, Any]) -> str:
    """The human-readable form of :func:`list_devices` (``edgeroom devices``)."""
    lines = []
    titles = {"microphones": "Microphones", "speakers": "Speakers", "cameras": "Cameras",
              "serial_ports": "Serial ports", "gpio": "GPIO chips"}
    for kind in KINDS:
        entry = inventory[kind]
        state = {True: "present", False: "MISSING", None: "not checked"}[entry["present"]]
        configured = entry["configured"]
        uses = entry["backend"]
        if configured is not None and kind != "gpio":
            uses += f" {configured}"
        lines.append(f"{titles[kind]}: {uses} - {state} ({entry['reason']})")
        for dev in entry["devices"]:
            lines.append(f"  {dev['id']:<28} {dev['name']}".rstrip())
        if not entry["devices"]:
            lines.append("  (none found)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- hotplug


Snapshot = dict[str, frozenset[str]]


class DeviceWatcher:
    """Polls sound cards, video nodes and serial ttys; emits ``devices-changed``.

    The event carries ``{"added": {kind: [...]}, "removed": {kind: [...]}}`` with the
    kinds ``sound_cards`` (``"card1 USB"``), ``cameras`` and ``serial_ports`` (paths).
    """

    def __init__(self, emit: Emit, interval: float = 3.0, *, dev_dir: str = "/dev",
                 asound_dir: str = "/proc/asound") -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self._emit = emit
        self.interval = interval
        self.dev_dir = dev_dir
        self.asound_dir = asound_dir
        self._task: asyncio.Task[None] | None = None
        self._last: Snapshot | None = None
        self.changes = 0

    def __repr__(self) -> str:
        state = "running" if self._task and not self._task.done() else "idle"
        return f"<DeviceWatcher {state} every {self.interval}s changes={self.changes}>"

    def snapshot(self) -> Snapshot:
        """What is present now (blocking file-system reads; cheap)."""
        cards = set()
        for card_dir in glob.glob(os.path.join(self.asound_dir, "card[0-9]*")):
            name = os.path.basename(card_dir)
            try:
                card_id = Path(card_dir, "id").read_text(encoding="utf-8").strip()
            except OSError:
                card_id = ""
            cards.add(f"{name} {card_id}".strip())
        cameras = set(glob.glob(os.path.join(self.dev_dir, "video*")))
        ttys = {p for p in glob.glob(os.path.join(self.dev_dir, "tty*"))
                if not _CONSOLE.match(os.path.basename(p))}
        return {"sound_cards": frozenset(cards), "cameras": frozenset(cameras),
                "serial_ports": frozenset(ttys)}

    async def start(self) -> None:
        if self._task is not None:
            return
        self._last = await asyncio.to_thread(self.snapshot)
        self._task = asyncio.create_task(self._poll(), name="device-watcher")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                now = await asyncio.to_thread(self.snapshot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep watching; a failed pass is retried
                log.warning("device scan failed: %s", exc)
                continue
            self._compare(now)

    def _compare(self, now: Snapshot) -> None:
        last = self._last or {k: frozenset() for k in now}
        self._last = now
        added = {k: sorted(now[k] - last.get(k, frozenset())) for k in now}
        removed = {k: sorted(last.get(k, frozenset()) - now[k]) for k in now}
        if any(added.values()) or any(removed.values()):
            self.changes += 1
            log.info("devices changed: added %s, removed %s",
                     {k: v for k, v in added.items() if v},
                     {k: v for k, v in removed.items() if v})
            self._emit("devices-changed", {"added": added, "removed": removed})

    async def stop(self) -> None:
        """Cancel the poll task and wait until it has exited. Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def __aenter__(self) -> DeviceWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
