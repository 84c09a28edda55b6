"""``edgeroom doctor``: one pass/fail line per check of what the config asks for."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from device.config import Config
from drivers.errors import EdgeroomError

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    skipped: bool = False

    def line(self) -> str:
        mark = "SKIP" if self.skipped else ("PASS" if self.ok else "FAIL")
        return f"{mark} {self.name}: {self.detail}"


class Skip(Exception):
    """Not applicable with this config (e.g. no serial port configured)."""


async def _mic(config: Config, state_dir: Path, sim: bool) -> str:
    from drivers.audio import choose_backend, open_mic

    mic = open_mic(config, state_dir, sim=sim)
    await mic.start()
    try:
        frame = await asyncio.wait_for(mic.read(), 2.0)
    finally:
        await mic.stop()
    backend, _ = choose_backend(config, sim=sim)
    return f"{backend} {config.audio.mic_device if backend == 'alsa' else config.sim.mic}: " \
           f"{frame.sample_count} samples per 20 ms frame"


async def _speaker(config: Config, state_dir: Path, sim: bool) -> str:
    from drivers.audio import choose_backend, open_speaker
    from drivers.audio.base import FRAME_SAMPLES, PcmFrame

    speaker = open_speaker(config, state_dir / "doctor", sim=sim)
    await speaker.start()
    try:
        speaker.write(PcmFrame(bytes(FRAME_SAMPLES * 2), captured_at=0.0))
        await asyncio.sleep(0.05)
    finally:
        await speaker.stop()
    backend, _ = choose_backend(config, sim=sim)
    return f"{backend} {config.audio.speaker_device if backend == 'alsa' else 'wav'}: opened"


async def _camera(config: Config, state_dir: Path, sim: bool) -> str:
    if not config.video.enabled:
        raise Skip("video.enabled = false")
    from drivers.camera import choose_backend, open_camera

    backend, _ = choose_backend(config, sim=sim)
    camera = open_camera(config, sim=sim)
    await camera.start()
    try:
        got = await asyncio.wait_for(camera.read(), 3.0)
    finally:
        await camera.stop()
    return f"{backend}: {got.frame.width}x{got.frame.height} frame received"


async def _gpio(config: Config, state_dir: Path, sim: bool) -> str:
    from drivers.gpio.factory import check_pins, make_factory

    if not config.gpio.buttons and not config.gpio.leds:
        raise Skip("no buttons or LEDs configured")
    check_pins(config.gpio.buttons, config.gpio.leds)
    factory = await asyncio.to_thread(make_factory, config.gpio.backend, sim)
    try:
        name = type(factory).__name__
    finally:
        factory.close()
    return f"{name}: {len(config.gpio.buttons)} buttons, {len(config.gpio.leds)} LEDs"


async def _serial(config: Config, state_dir: Path, sim: bool) -> str:
    if not config.serial.port:
        raise Skip("serial.port is unset")
    from drivers.serial.line import SerialLine

    line = SerialLine(config.serial.port, config.serial.baudrate)
    await line.open()
    await line.close()
    return f"{config.serial.port} at {config.serial.baudrate} baud: opened"


async def _room_server(config: Config, state_dir: Path, sim: bool) -> str:
    if config.room.server == "local":
        janus = shutil.which("janus")
        if janus is None:
            raise EdgeroomError('room.server = "local" but the janus program is not installed '
                                "(apt-get install janus)")
        return f"local Janus at {janus} (started by the appliance)"
    from services.room.janus.transport import JanusConnection

    conn = JanusConnection(config.room.server, api_secret=config.room.api_secret,
                           token=config.room.token)
    await conn.open(timeout=CHECK_TIMEOUT)
    try:
        return f"{config.room.server}: session {conn.session_id} created"
    finally:
        await conn.close()


CHECKS: list[tuple[str, Callable[[Config, Path, bool], Awaitable[str]]]] = [
    ("microphone", _mic),
    ("speaker", _speaker),
    ("camera", _camera),
    ("gpio", _gpio),
    ("serial", _serial),
    ("room server", _room_server),
]


async def run_checks(config: Config, state_dir: Path, sim: bool = False) -> list[CheckResult]:
    results = []
    for name, check in CHECKS:
        try:
            detail = await asyncio.wait_for(check(config, state_dir, sim), CHECK_TIMEOUT + 1)
            results.append(CheckResult(name, True, detail))
        except Skip as why:
            results.append(CheckResult(name, True, str(why), skipped=True))
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            results.append(CheckResult(name, False, "timed out"))
        except Exception as exc:
            log.debug("check %s failed", name, exc_info=True)
            results.append(CheckResult(name, False, f"{type(exc).__name__}: {exc}"))
    return results
