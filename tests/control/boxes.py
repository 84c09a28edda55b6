"""An in-process appliance in its own network namespace, for tests against real Janus."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device import config as config_mod
from device.app import Appliance
from device.controls import ButtonControls, SimButtons
from tests.harness.janus import JanusServer
from tests.harness.netns import Network, NsLoop

TONE = 440


class BoxInNamespace:
    """An in-process appliance running on an event loop inside its own namespace."""

    def __init__(self, network: Network, workdir: Path, config: dict[str, Any]) -> None:
        self.loop = NsLoop(network.add_host(f"box{len(network.hosts)}"))
        workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = workdir / "state"
        path = workdir / "edgeroom.toml"
        cfg = config_mod.Config().replace(config)
        config_mod.save(path, cfg)
        self.app = Appliance(cfg, path, self.state_dir, sim=True)
        self.task = self.loop.submit(self.app.run())
        self.wait(lambda: "gpio_controls" in self.app.extras, what="gpio up")

    @property
    def speaker_wav(self) -> Path:
        return self.state_dir / "speaker.wav"

    def wait(self, cond: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if self.task.done():
                self.task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; state "
                                     f"{self.app.state.state}")
            time.sleep(0.05)

    @property
    def controls(self) -> ButtonControls:
        c = self.app.extras["gpio_controls"]
        assert isinstance(c, ButtonControls)
        return c

    def press(self, role: str) -> None:
        panel = self.app.extras["buttons"]
        assert isinstance(panel, SimButtons)
        self.loop.run(panel.press(role), 10)

    def release(self, role: str) -> None:
        panel = self.app.extras["buttons"]
        assert isinstance(panel, SimButtons)
        self.loop.run(panel.release(role), 10)

    def click(self, role: str) -> None:
        self.press(role)
        self.release(role)

    def led(self, role: str) -> Any:
        leds = self.controls.leds
        assert leds is not None
        return leds.pin(role)

    def led_pattern(self, role: str) -> str:
        leds = self.controls.leds
        assert leds is not None
        return leds.pattern(role).name

    def close(self) -> None:
        self.loop.loop.call_soon_threadsafe(self.app.request_stop)
        try:
            self.task.result(15)
        finally:
            self.loop.close()


@pytest.fixture
def make_box(network: Network, janus: JanusServer,
             tmp_path: Path) -> Iterator[Callable[..., BoxInNamespace]]:
    boxes: list[BoxInNamespace] = []

    def make(room_id: int, gpio: dict[str, Any], auto_join: bool = False,
             **sections: dict[str, Any]) -> BoxInNamespace:
        config: dict[str, dict[str, Any]] = {
            "room": {"server": janus.url, "room": room_id, "display_name": "box",
                     "auto_join": auto_join},
            "video": {"enabled": False, "receive": False},
            "audio": {"aec": False, "agc": False, "noise_suppression": False},
            "sim": {"mic": f"tone:{TONE}"},
            "gpio": {"hold_time": 1.0, "repeat_interval": 0.1, "leds": {
                "status": 5, "mute": 6}, **gpio},
        }
        for name, values in sections.items():
            config[name] = {**config.get(name, {}), **values}
        box = BoxInNamespace(network, tmp_path / f"box{len(boxes)}", config)
        boxes.append(box)
        return box

    try:
        yield make
    finally:
        for box in boxes:
            box.close()


