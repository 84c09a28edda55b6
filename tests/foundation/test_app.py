"""The composed appliance: config changes restart only the subsystems they touch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from device import config as config_mod
from device.app import Appliance
from device.config import Config


async def wait_until(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


async def test_config_change_restarts_only_what_it_touches(tmp_path: Path) -> None:
    cfg = Config().replace({"room": {"auto_join": False, "server": "ws://127.0.0.1:9"},
                            "web": {"listen": "127.0.0.1:0"}})
    path = tmp_path / "edgeroom.toml"
    config_mod.save(path, cfg)
    app = Appliance(cfg, path, tmp_path / "state", sim=True)
    runner = asyncio.create_task(app.run())
    try:
        await wait_until(lambda: {"web", "room", "video", "gpio", "serial", "devices"}
                         <= set(app.supervisor.subsystems))

        def restarts() -> dict[str, int]:
            return {n: s.restarts for n, s in app.supervisor.subsystems.items()}

        before = restarts()
        # An audio key: the mic (media's tee) and the speaker (the room's) reopen.
        await asyncio.wait_for(app.update_config({"sim": {"mic": "tone:880"}}), 10)
        after = restarts()
        changed = {n for n in after if after[n] != before[n]}
        assert changed == {"video", "room"}
        assert config_mod.load(path).sim.mic == "tone:880"
        # A volume is applied live: nothing restarts.
        await asyncio.wait_for(app.update_config({"audio": {"speaker_volume": 40}}), 10)
        assert restarts() == after
        # A GPIO key restarts the GPIO subsystem alone.
        await asyncio.wait_for(app.update_config({"gpio": {"bounce_time": 0.05}}), 10)
        final = restarts()
        assert {n for n in final if final[n] != after[n]} == {"gpio"}
    finally:
        app.request_stop()
        await asyncio.wait_for(runner, 10)
