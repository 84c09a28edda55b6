"""Fixtures shared by the driver tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
def asoundrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AsoundRc]:
    if not ALSA_MAIN_CONF.exists():
        pytest.fail(f"{ALSA_MAIN_CONF} missing: install libasound2-data / alsa-utils")
    rc = AsoundRc(tmp_path)
    rc.path.write_text("")
    monkeypatch.setenv("ALSA_CONFIG_PATH", f"{ALSA_MAIN_CONF}:{rc.path}")
    yield rc
