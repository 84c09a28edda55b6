"""The arm64 image tests share one root: bookworm arm64, the stage applied under qemu-user.

It is built with the options of a read-only-root image with SSH on
(``EDGEROOM_READONLY_ROOT=1``, ``EDGEROOM_SSH=1``), so that the boot test sees the state
partition mounted and the SSH host keys made on the device. The phases' times are printed
at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.arm64.build import cached_wheels, ensure_binfmt, rootfs_tarball
from tests.image.rootfs import BuiltRoot, build_root, remove_root

OPTIONS = {"EDGEROOM_SSH": "1", "EDGEROOM_READONLY_ROOT": "1"}
TOOLS = ("mmdebstrap", "chroot", "qemu-system-aarch64", "mkfs.ext4", "sfdisk", "systemctl")
FIGURES: dict[str, str] = {}


def timed(label: str, started: float) -> None:
    FIGURES[label] = f"{time.monotonic() - started:.1f} s"


@pytest.fixture(scope="session")
def arm64_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltRoot]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} needed for the arm64 image tests "
                    "(scripts/deps.sh installs them)")
    if os.geteuid() != 0:
        pytest.fail("the arm64 image tests build a root filesystem and need root")
    ensure_binfmt()
    started = time.monotonic()
    tarball = rootfs_tarball()
    timed("arm64 root (mmdebstrap under qemu-user, or the cache)", started)
    started = time.monotonic()
    wheels = cached_wheels(tarball)
    timed("aarch64 wheels (pyalsaaudio compiled under qemu-user, or the cache)", started)
    started = time.monotonic()
    built = build_root(tmp_path_factory.mktemp("arm64"), tarball, [wheels], OPTIONS,
                       timeout=2400)
    timed("stage scripts on the arm64 root (unpack, 01-run.sh, 01-run-chroot.sh)", started)
    yield built
    remove_root(built.root)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("arm64 image: measured")
        for label, value in FIGURES.items():
            terminalreporter.write_line(f"{value:>10}  {label}")
