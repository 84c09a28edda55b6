"""Fixtures shared by the driver tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.pulse import PulseServer

# --- audio: real alsa-lib with file-backed PCMs ---------------------------------------

ALSA_MAIN_CONF = Path("/usr/share/alsa/alsa.conf")


class AsoundRc:
    """Writes an asoundrc of ``type file`` PCMs and points alsa-lib at it.

    alsa-lib reads ``ALSA_CONFIG_PATH`` again (and reloads when the file list or a
    file changes) on every PCM open, so setting it in-process works for each test.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / "asoundrc"
        self._blocks: list[str] = []

    def file_pcm(self, name: str, *, out: Path | str = "/dev/null",
                 infile: Path | None = None) -> str:
        """A PCM that writes what is played (or captured) to ``out`` and, for
        capture, reads its samples from ``infile``. Raw, no header."""
        lines = [f"pcm.{name} {{", "    type file", '    slave.pcm "null"',
                 f'    file "{out}"', '    format "raw"']
        if infile is not None:
            lines.append(f'    infile "{infile}"')
        lines.append("}")
        self._blocks.append("\n".join(lines))
        self.path.write_text("\n".join(self._blocks) + "\n")
        return name

    def add(self, block: str) -> None:
        """Any other asoundrc text (e.g. :meth:`PulseServer.asoundrc_blocks`)."""
        self._blocks.append(block)
        self.path.write_text("\n".join(self._blocks) + "\n")


@pytest.fixture
def asoundrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AsoundRc]:
    if not ALSA_MAIN_CONF.exists():
        pytest.fail(f"{ALSA_MAIN_CONF} missing: install libasound2-data / alsa-utils")
    rc = AsoundRc(tmp_path)
    rc.path.write_text("")
    monkeypatch.setenv("ALSA_CONFIG_PATH", f"{ALSA_MAIN_CONF}:{rc.path}")
    yield rc


@dataclass
class PulsePcms:
    """ALSA PCMs on a private PulseAudio null sink (a device with its own clock)."""

    server: PulseServer
    playback: str  # plays into the null sink, at its pace
    capture: str  # records the null sink's monitor: what was played, at the same pace


@pytest.fixture
def pulse_pcms(asoundrc: AsoundRc, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[PulsePcms]:
    reason = PulseServer.missing()
    if reason:
        pytest.fail(reason)  # a missing prerequisite is a failure, not a skip
    workdir = tmp_path / "pulse"
    workdir.mkdir()
    server = PulseServer(workdir)
    server.start()
    try:
        for key in ("PULSE_SERVER", "PULSE_CLIENTCONFIG"):
            monkeypatch.setenv(key, server.env[key])
        asoundrc.add(server.asoundrc_blocks("pulseout", "pulsein"))
        yield PulsePcms(server, "pulseout", "pulsein")
    finally:
        server.stop()


@pytest.fixture
def fake_asound(tmp_path: Path) -> Path:
    """A /proc/asound with two cards, one capture device held by this process."""
    root = tmp_path / "proc"
    root.mkdir()
    asound = root / "asound"
    asound.mkdir()
    (asound / "cards").write_text(
        " 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n"
        "                      HDA Intel PCH at 0xf7f10000 irq 32\n"
        " 1 [Device         ]: USB-Audio - USB Audio Device\n"
        "                      C-Media USB Audio Device at usb-0000:00:14.0-2, full speed\n")
    (asound / "pcm").write_text(
        "00-00: ALC887 Analog : ALC887 Analog : playback 1 : capture 1\n"
        "00-03: HDMI 0 : HDMI 0 : playback 1\n"
        "01-00: USB Audio : USB Audio : playback 1 : capture 1\n")
    sub = asound / "card1" / "pcm0c" / "sub0"
    sub.mkdir(parents=True)
    (sub / "status").write_text(f"state: RUNNING\nowner_pid   : {os.getpid()}\n")
    (asound / "card1" / "pcm0p" / "sub0").mkdir(parents=True)
    (asound / "card1" / "pcm0p" / "sub0" / "status").write_text("closed\n")
    pid_dir = root / str(os.getpid())
    pid_dir.mkdir()
    (pid_dir / "comm").write_text("arecord\n")
    return asound
