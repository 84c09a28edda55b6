"""The device inventory on this machine, and the hotplug watcher on a real directory tree."""

from __future__ import annotations

import asyncio
import glob
import json
import os
from pathlib import Path
from typing import Any

import pytest
from serial.tools import list_ports

from device.config import Config
from device.settings import inventory as inventory_settings
from drivers.inventory import KINDS, DeviceWatcher, list_devices, render_text

ENTRY_KEYS = {"backend", "configured", "present", "reason", "devices"}
BACKENDS = {
    "microphones": {"alsa", "sim"},
    "speakers": {"alsa", "sim"},
    "cameras": {"picamera2", "v4l2", "sim"},
    "serial_ports": {"pyserial", "off"},
    "gpio": {"lgpio", "mock"},
}


def _check_shape(inventory: dict[str, Any]) -> None:
    assert set(inventory) == {"sim", *KINDS}
    assert isinstance(inventory["sim"], bool)
    for kind in KINDS:
        entry = inventory[kind]
        assert set(entry) == ENTRY_KEYS, kind
        assert entry["backend"] in BACKENDS[kind], (kind, entry["backend"])
        assert entry["present"] in (True, False, None)
        assert isinstance(entry["reason"], str) and entry["reason"]
        for dev in entry["devices"]:
            assert isinstance(dev["id"], str) and dev["id"], (kind, dev)
            assert isinstance(dev["name"], str), (kind, dev)
    json.loads(json.dumps(inventory))  # plain JSON all the way down


def test_inventory_on_this_machine_has_the_documented_shape() -> None:
    inventory = list_devices(inventory_settings(Config()))
    _check_shape(inventory)
    cameras = [d["id"] for d in inventory["cameras"]["devices"] if d["api"] == "v4l2"]
    assert cameras == sorted(glob.glob("/dev/video*"),
                             key=lambda p: int(p[len("/dev/video"):] or -1))
    ports = {d["id"] for d in inventory["serial_ports"]["devices"]}
    assert {p.device for p in list_ports.comports()} <= ports
    assert set(glob.glob("/dev/ttyAMA*")) <= ports
    assert inventory["serial_ports"]["backend"] == "off"  # serial.port unset by default
    assert inventory["cameras"]["present"] == os.path.exists("/dev/video0") or \
        inventory["cameras"]["backend"] == "picamera2"
    chips = [d["id"] for d in inventory["gpio"]["devices"]]
    assert chips == sorted(glob.glob("/dev/gpiochip*"))
    assert inventory["gpio"]["backend"] == "lgpio"  # auto without --sim
    if not chips:
        assert inventory["gpio"]["present"] is False
        assert "gpiochip" in inventory["gpio"]["reason"] or "lgpio" in \
            inventory["gpio"]["reason"]
    mock_gpio = Config().replace({"gpio": {"backend": "mock"}})
    mock = list_devices(inventory_settings(mock_gpio))["gpio"]
    assert (mock["backend"], mock["present"]) == ("mock", True)


def test_documented_shape_matches_docs() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "devices.md").read_text()
    for key in (*KINDS, *ENTRY_KEYS, "devices-changed", "sound_cards"):
        assert f"`{key}`" in doc or f'"{key}"' in doc, key


def test_sim_and_explicit_backends_are_reported() -> None:
    sim = list_devices(inventory_settings(Config()), sim=True)
    _check_shape(sim)
    assert sim["sim"] is True
    assert (sim["microphones"]["backend"], sim["microphones"]["configured"]) == ("sim",
                                                                                 "tone:440")
    assert sim["speakers"]["configured"] == "speaker.wav"
    assert (sim["cameras"]["backend"], sim["cameras"]["configured"]) == ("sim", "pattern")
    assert sim["gpio"]["backend"] == "mock"

    config = Config().replace({
        "audio": {"backend": "alsa", "mic_device": "plughw:7,0"},
        "video": {"backend": "v4l2", "device": "/dev/video-edgeroom-missing"},
        "serial": {"port": "loop://"},
        "gpio": {"backend": "lgpio"},
    })
    # explicit backends win over --sim
    real = list_devices(inventory_settings(config), sim=True)
    _check_shape(real)
    assert real["microphones"]["backend"] == "alsa"
    assert real["microphones"]["present"] is (
        any(d.get("card") == 7 for d in real["microphones"]["devices"]))
    assert real["cameras"]["backend"] == "v4l2"
    assert real["cameras"]["present"] is False
    assert real["serial_ports"]["configured"] == "loop://"
    assert real["gpio"]["backend"] == "lgpio"
    if not glob.glob("/dev/gpiochip*"):
        assert real["gpio"]["present"] is False

    tty = Config().replace({"serial": {"port": "/dev/ttyS0"}})
    serial = list_devices(inventory_settings(tty))["serial_ports"]
    assert serial["present"] is os.path.exists("/dev/ttyS0")


def test_text_and_json_output() -> None:
    inventory = list_devices(inventory_settings(Config()))
    text = render_text(inventory)
    for title in ("Microphones:", "Speakers:", "Cameras:", "Serial ports:", "GPIO chips:"):
        assert title in text
    _check_shape(json.loads(json.dumps(inventory)))  # what `edgeroom devices --json` prints


def _fake_tree(root: Path) -> tuple[Path, Path]:
    dev, asound = root / "dev", root / "asound"
    dev.mkdir()
    asound.mkdir()
    for name in ("tty", "tty0", "tty12", "ttyS0", "video0"):
        (dev / name).touch()
    (asound / "card0").mkdir()
    (asound / "card0" / "id").write_text("PCH\n")
    return dev, asound


def test_snapshot_reads_cards_cameras_and_serial_ttys(tmp_path: Path) -> None:
    dev, asound = _fake_tree(tmp_path)
    snap = DeviceWatcher(lambda n, d: None, dev_dir=str(dev), asound_dir=str(asound)).snapshot()
    assert snap == {
        "sound_cards": frozenset({"card0 PCH"}),
        "cameras": frozenset({str(dev / "video0")}),
        "serial_ports": frozenset({str(dev / "ttyS0")}),  # virtual consoles left out
    }


async def test_watcher_emits_devices_changed_on_plug_and_unplug(tmp_path: Path) -> None:
    dev, asound = _fake_tree(tmp_path)
    events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    watcher = DeviceWatcher(lambda name, data: events.put_nowait((name, data)), 0.05,
                            dev_dir=str(dev), asound_dir=str(asound))
    async with watcher:
        await asyncio.sleep(0.15)
        assert events.empty()  # nothing changed, nothing said
        (dev / "ttyUSB0").touch()
        (dev / "video2").touch()
        (asound / "card1").mkdir()
        (asound / "card1" / "id").write_text("Device\n")
        expected = {"sound_cards": ["card1 Device"], "cameras": [str(dev / "video2")],
                    "serial_ports": [str(dev / "ttyUSB0")]}
        added: dict[str, list[str]] = {kind: [] for kind in expected}
        while added != expected:  # a scan may fall between the three changes
            name, data = await asyncio.wait_for(events.get(), 5)
            assert name == "devices-changed"
            assert not any(data["removed"].values())
            for kind, items in data["added"].items():
                added[kind] = sorted({*added[kind], *items})
        (dev / "video0").unlink()
        name, data = await asyncio.wait_for(events.get(), 5)
        assert data["removed"]["cameras"] == [str(dev / "video0")]
        assert data["added"] == {"sound_cards": [], "cameras": [], "serial_ports": []}
        assert watcher.changes >= 2
    await watcher.stop()  # idempotent
    assert "idle" in repr(watcher)


def test_watcher_refuses_a_bad_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        DeviceWatcher(lambda n, d: None, 0)
