"""The ``web`` subsystem inside a running appliance: first-start password, restart on
a ``web.listen`` change made from the page itself."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path

import aiohttp
import pytest

from device.app import Appliance
from device.config import Config, WebConfig
from services.web import run_web
from tests.web.conftest import TIMEOUT, client


class WebOnlyAppliance(Appliance):
    """The real appliance with only the web subsystem (no room, no audio)."""

    def _compose(self) -> None:
        self.register("web", run_web)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_up(url: str) -> None:
    async with client() as http:
        for _ in range(200):
            try:
                async with http.get(f"{url}/api/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never came up")


async def test_first_start_logs_a_password_once_and_listen_change_restarts_web(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="services.web")
    port = _free_port()
    config = Config(web=WebConfig(listen=f"127.0.0.1:{port}"))
    app = WebOnlyAppliance(config, tmp_path / "edgeroom.toml", tmp_path / "state", sim=True)
    runner = asyncio.create_task(app.run(), name="test:appliance")
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.wait_for(_wait_up(url), TIMEOUT)
        shown = [r.getMessage() for r in caplog.records if "admin password" in r.getMessage()]
        assert len(shown) == 1
        match = re.search(r"once\): (\S+)$", shown[0])
        assert match is not None
        password = match.group(1)
        assert (app.state_dir / "web-password.hash").stat().st_mode & 0o777 == 0o600

        new_port = _free_port()
        async with client() as http:
            async with http.post(f"{url}/api/login", json={"password": password}) as r:
                csrf = (await r.json())["csrf_token"]
            async with http.patch(f"{url}/api/config", headers={"X-CSRF-Token": csrf},
                                  json={"web": {"listen": f"127.0.0.1:{new_port}"}}) as r:
                assert r.status == 200  # the reply gets out before the restart
                data = await r.json()
        assert data["pending"] is True and data["restart"] == ["web"]
        new_url = f"http://127.0.0.1:{new_port}"
        await asyncio.wait_for(_wait_up(new_url), TIMEOUT)
        assert f"127.0.0.1:{new_port}" in app.config_path.read_text()
        with pytest.raises(aiohttp.ClientConnectionError):
            async with client() as http, http.get(f"{url}/api/health"):
                pass
        # A restart of the subsystem does not make (or show) a new password.
        shown = [r for r in caplog.records if "admin password" in r.getMessage()]
        assert len(shown) == 1
        async with client() as http:
            async with http.post(f"{new_url}/api/login", json={"password": password}) as r:
                assert r.status == 200
    finally:
        app.request_stop()
        await asyncio.wait_for(runner, TIMEOUT)
