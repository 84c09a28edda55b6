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
from services.web import WebServer, run_web
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
        assert sum("admin password" in r.getMessage() for r in caplog.records) == 1
        async with client() as http:
            async with http.post(f"{new_url}/api/login", json={"password": password}) as r:
                assert r.status == 200
    finally:
        app.request_stop()
        await asyncio.wait_for(runner, TIMEOUT)


async def test_factory_reset_makes_a_new_password(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="services.web")
    urls: list[str] = []

    class EphemeralWebAppliance(Appliance):
        """After the reset the config says the default port; tests never take it."""

        def _compose(self) -> None:
            async def run(app: Appliance) -> None:
                async with WebServer(app, listen="127.0.0.1:0") as server:
                    urls.append(server.url)
                    await asyncio.Event().wait()

            self.register("web", run)

    app = EphemeralWebAppliance(Config(), tmp_path / "edgeroom.toml", tmp_path / "state",
                                sim=True)
    runner = asyncio.create_task(app.run(), name="test:appliance")

    def passwords() -> list[str]:
        return [m.group(1) for r in caplog.records
                if (m := re.search(r"once\): (\S+)$", r.getMessage()))]

    try:
        for _ in range(100):
            if urls:
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(_wait_up(urls[0]), TIMEOUT)
        (first,) = passwords()
        await asyncio.wait_for(app.dispatcher.dispatch("factory_reset", {}, source="test"),
                               TIMEOUT)
        # The reset erased the password hash: the page comes back with a new password.
        for _ in range(100):
            if len(passwords()) == 2 and len(urls) == 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(_wait_up(urls[1]), TIMEOUT)
        first_again, second = passwords()
        assert first_again == first and second != first
        assert str(app.state.state) == "setup"
        async with client() as http:
            for password, status in ((first, 401), (second, 200)):
                async with http.post(f"{urls[1]}/api/login",
                                     json={"password": password}) as r:
                    assert r.status == status
    finally:
        app.request_stop()
        await asyncio.wait_for(runner, TIMEOUT)
