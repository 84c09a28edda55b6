"""``edgeroom doctor``: one pass/fail line per check of what the config asks for.

It first asks a running appliance (over ``<state>/control.sock``) for its health probes;
while one runs, the devices it holds are checked through its probes instead of being
opened a second time.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from device.config import Config
from device.control_socket import SOCKET_NAME, query
from device.settings import audio_devices, camera
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

    mic = open_mic(audio_devices(config), state_dir, sim=sim)
    await mic.start()
    try:
        frame = await asyncio.wait_for(mic.read(), 2.0)
    finally:
        await mic.stop()
    backend, _ = choose_backend(audio_devices(config), sim=sim)
    return f"{backend} {config.audio.mic_device if backend == 'alsa' else config.sim.mic}: " \
           f"{frame.sample_count} samples per 20 ms frame"


async def _speaker(config: Config, state_dir: Path, sim: bool) -> str:
    from drivers.audio import choose_backend, open_speaker
    from drivers.audio.base import FRAME_SAMPLES, PcmFrame

    speaker = open_speaker(audio_devices(config), state_dir / "doctor", sim=sim)
    await speaker.start()
    try:
        speaker.write(PcmFrame(bytes(FRAME_SAMPLES * 2), captured_at=0.0))
        await asyncio.sleep(0.05)
    finally:
        await speaker.stop()
    backend, _ = choose_backend(audio_devices(config), sim=sim)
    return f"{backend} {config.audio.speaker_device if backend == 'alsa' else 'wav'}: opened"


async def _camera(config: Config, state_dir: Path, sim: bool) -> str:
    if not config.video.enabled:
        raise Skip("video.enabled = false")
    from drivers.camera import choose_backend, open_camera

    backend, _ = choose_backend(camera(config), sim=sim)
    source = open_camera(camera(config), sim=sim)
    await source.start()
    try:
        got = await asyncio.wait_for(source.read(), 3.0)
    finally:
        await source.stop()
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
                           token=config.room.token, ca_file=config.room.ca_file)
    await conn.open(timeout=CHECK_TIMEOUT)
    try:
        return f"{config.room.server}: session {conn.session_id} created"
    finally:
        await conn.close()


async def _stream_server(config: Config, state_dir: Path, sim: bool) -> str:
    """The RTMP server answers (and an rtmps:// one is trusted); nothing is published."""
    url = config.stream.rtmp_url
    if not url:
        raise Skip("stream.rtmp_url is unset")
    from urllib.parse import urlsplit

    from services.media import tls_trust
    from services.media.rtmp import redact_url

    parts = urlsplit(url)
    if parts.scheme == "rtmps":
        ca_file = config.stream.ca_file
        ca = tls_trust.ca_for(ca_file, "stream.ca_file")
        await asyncio.to_thread(tls_trust.handshake, url, ca, "stream.ca_file",
                                custom=bool(ca_file), timeout=CHECK_TIMEOUT)
        by = f"stream.ca_file ({ca_file})" if ca_file else "a CA of the system"
        return f"{redact_url(url)}: its certificate is trusted (signed by {by})"
    _, writer = await asyncio.open_connection(parts.hostname, parts.port or 1935)
    writer.close()
    return f"{redact_url(url)}: accepts connections"


CHECKS: list[tuple[str, Callable[[Config, Path, bool], Awaitable[str]]]] = [
    ("microphone", _mic),
    ("speaker", _speaker),
    ("camera", _camera),
    ("gpio", _gpio),
    ("serial", _serial),
    ("room server", _room_server),
    ("stream server", _stream_server),
]


#: Checks that open a device the running appliance holds (its probes cover them).
HELD_BY_APPLIANCE = ("microphone", "speaker", "camera")


def _probe_result(probe: dict[str, object]) -> CheckResult:
    name = f"probe {probe.get('name')}"
    grace = probe.get("grace")
    age = probe.get("last_ok_age")
    if probe.get("error"):
        detail = f"{probe['error']} (grace {grace} s)"
    elif not probe.get("active"):
        detail = f"idle (grace {grace} s)"
    elif probe.get("ok"):
        detail = f"progress {age} s ago (grace {grace} s)"
    else:
        detail = f"no progress for {age} s (grace {grace} s)"
    return CheckResult(name, bool(probe.get("ok")), detail)


async def _running(state_dir: Path) -> list[CheckResult]:
    """The running appliance and its probes, or one line saying none runs."""
    path = state_dir / SOCKET_NAME
    reply = await query(path)
    if reply is None:
        return [CheckResult("appliance", True, f"not running (nothing answers on {path})",
                            skipped=True)]
    if not reply.get("ok"):
        return [CheckResult("appliance", False, f"answered with an error: {reply.get('error')}")]
    health = reply.get("health") or {}
    probes = health.get("probes", []) if isinstance(health, dict) else []
    out = [CheckResult("appliance", True,
                       f"running (pid {reply.get('pid')}, {reply.get('state')}, "
                       f"up {reply.get('uptime')} s)")]
    out += [_probe_result(p) for p in probes if isinstance(p, dict)]
    return out


async def run_checks(config: Config, state_dir: Path, sim: bool = False) -> list[CheckResult]:
    results = await _running(state_dir)
    running = not results[0].skipped
    for name, check in CHECKS:
        if running and name in HELD_BY_APPLIANCE:
            results.append(CheckResult(name, True, "in use by the running appliance "
                                       "(see its probes)", skipped=True))
            continue
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
