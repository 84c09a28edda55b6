"""A mic that disappears mid-call: the next one is taken and ``devices-updated`` says so.

Real alsa-lib on file-backed PCMs: two capture PCMs, each fed a different tone from a
FIFO at real-time pace; the first breaks (its copy pipe goes away) as a USB mic does.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from device.app import Appliance
from device.config import AudioConfig, Config, WebConfig
from device.live_devices import DeviceSwitcher
from device.settings import audio_devices
from drivers.audio import open_mic
from services.media.audio import MicTee
from tests.drivers.conftest import AsoundRc, asoundrc  # noqa: F401  (fixture)
from tests.harness.alsa_mic import FifoMic
from tests.harness.polling import wait_until

T = 10.0


def dominant(samples: bytes) -> float:
    x = np.frombuffer(samples, np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / 48_000)[int(np.argmax(spectrum))])


async def test_a_lost_mic_falls_back_to_the_next(asoundrc: AsoundRc,  # noqa: F811
                                                 tmp_path: Path) -> None:
    first, backup = FifoMic(tmp_path / "first.fifo", 500), FifoMic(tmp_path / "b.fifo", 1500)
    copy = tmp_path / "copy.fifo"
    os.mkfifo(copy)
    reader = os.open(copy, os.O_RDONLY | os.O_NONBLOCK)
    asoundrc.file_pcm("usbmic", out=copy, infile=first.path)
    asoundrc.file_pcm("backupmic", infile=backup.path)
    config = Config(audio=AudioConfig(backend="alsa", mic_device="usbmic"),
                    web=WebConfig(listen="127.0.0.1:0"))
    app = Appliance(config, tmp_path / "edgeroom.toml", tmp_path / "state", sim=False)
    app.bus.bind(asyncio.get_running_loop())
    updates: list[dict[str, Any]] = []
    app.bus.add_listener(lambda ev: updates.append(ev.data)
                         if ev.name == "devices-updated" else None)
    tee = MicTee(lambda: open_mic(audio_devices(app.config), app.state_dir, sim=False,
                                  emit=app.bus.publish), emit=app.bus.publish)
    app.media = SimpleNamespace(mic=tee, video=None)  # type: ignore[assignment]
    app.status_providers.add("devices", lambda: {"microphones": {"devices": [
        {"id": "usbmic"}, {"id": "backupmic"}]}})
    switcher = DeviceSwitcher(app)
    app.bus.add_listener(switcher.on_event)
    branch = tee.branch("room", maxsize=200)
    await asyncio.wait_for(branch.start(), T)
    try:
        frames = [await asyncio.wait_for(branch.read(), T) for _ in range(10)]
        assert abs(dominant(frames[-1].samples) - 500) < 30
        # Unplugged: the copy pipe's reader goes away, the next write fails.
        replacement = tmp_path / "replacement"
        replacement.write_bytes(b"")
        os.replace(replacement, copy)
        os.close(reader)

        async def backup_heard() -> None:
            while True:
                frame = await branch.read()
                if abs(dominant(frame.samples) - 1500) < 30:
                    return

        await asyncio.wait_for(backup_heard(), T)
        # (published once the old device has closed, a moment after the new one delivers)
        await wait_until(lambda: bool(updates), T)
        assert updates == [{"kind": "mic", "from": "usbmic", "to": "backupmic",
                            "reason": "lost", "live": True}], updates
        assert switcher.in_use("mic") == "backupmic"
        for _ in range(5):  # and it stays there
            frame = await asyncio.wait_for(branch.read(), T)
            assert abs(dominant(frame.samples) - 1500) < 30
    finally:
        await asyncio.wait_for(tee.close(), T)
        first.close()
        backup.close()


async def test_a_lost_speaker_falls_back_to_the_next(asoundrc: AsoundRc,  # noqa: F811
                                                     tmp_path: Path) -> None:
    from drivers.audio import open_speaker
    from drivers.audio.base import PcmFrame
    from services.playback.speaker import PlaybackSpeaker

    out = tmp_path / "usb.fifo"
    os.mkfifo(out)
    reader = os.open(out, os.O_RDONLY | os.O_NONBLOCK)
    backup_out = tmp_path / "backup.raw"
    asoundrc.file_pcm("usbspk", out=out)
    asoundrc.file_pcm("backupspk", out=backup_out)
    config = Config(audio=AudioConfig(backend="alsa", speaker_device="usbspk"),
                    web=WebConfig(listen="127.0.0.1:0"))
    app = Appliance(config, tmp_path / "edgeroom.toml", tmp_path / "state", sim=False)
    app.bus.bind(asyncio.get_running_loop())
    updates: list[dict[str, Any]] = []
    app.bus.add_listener(lambda ev: updates.append(ev.data)
                         if ev.name == "devices-updated" else None)
    speaker = PlaybackSpeaker(open_speaker(audio_devices(app.config), app.state_dir, sim=False,
                                           emit=app.bus.publish), lambda count: None)
    voice = np.full(960, 1234, np.int16).tobytes()
    speaker.set_source(lambda count, at: PcmFrame(voice[: 2 * count], at))
    app.room = SimpleNamespace(speaker=speaker)  # type: ignore[assignment]
    app.status_providers.add("devices", lambda: {"speakers": {"devices": [
        {"id": "usbspk"}, {"id": "backupspk"}]}})
    switcher = DeviceSwitcher(app)
    app.bus.add_listener(switcher.on_event)
    await asyncio.wait_for(speaker.start(), T)
    try:
        await asyncio.sleep(0.2)
        replacement = tmp_path / "replacement"  # unplugged: the pipe loses its reader
        replacement.write_bytes(b"")
        os.replace(replacement, out)
        os.close(reader)

        await wait_until(lambda: backup_out.exists() and backup_out.stat().st_size > 10 * 1920,
                         T)
        await wait_until(lambda: bool(updates), T)
        assert updates == [{"kind": "speaker", "from": "usbspk", "to": "backupspk",
                            "reason": "lost", "live": True}], updates
        played = np.frombuffer(backup_out.read_bytes()[-1920:], np.int16)
        assert (played != 0).any()  # the room's mix goes on, on the new speaker
    finally:
        await asyncio.wait_for(speaker.stop(), T)
