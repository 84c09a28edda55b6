"""The arm64 root, booted in QEMU (software-emulated Cortex-A72): the box as users get it.

The disk is the root plus the state partition, as a flashed read-only-root build; the
only test-only additions are DHCP on QEMU's network, a drop-in giving the service longer
start and watchdog limits for emulation (see ``guest/50-emulation.conf``), and the unit that
reports the boot. Two boots of one disk: the device makes its own secrets on the first, and
the second keeps them. A third boot of a fresh copy of the same disk makes different ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.arm64 import qemu
from tests.arm64.conftest import FIGURES
from tests.image.rootfs import BuiltRoot, remove_root

pytestmark = [pytest.mark.slow, pytest.mark.timeout(10800)]
# Wall-clock budget of one boot, QEMU start to the report (TCG on a shared 2-core host).
BOOT_BUDGET = 1500
MAX_EXPOSURE = 4.5  # as tests/system/test_units.py requires of the unit file
PASSWORD_LOGGED = "config page admin password (shown only this once)"


@dataclass
class Disk:
    path: Path
    pristine: Path
    kernel: Path
    initrd: Path
    work: Path


@pytest.fixture(scope="module")
def disk(arm64_root: BuiltRoot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Disk]:
    work = tmp_path_factory.mktemp("boot")
    started = time.monotonic()
    root = work / "root"
    subprocess.run(["cp", "-a", str(arm64_root.root), str(root)], check=True, timeout=900)
    qemu.prepare_boot_root(root)
    kernel, initrd = qemu.kernel_and_initrd(root)
    shutil.copy(kernel, work / "vmlinuz")
    shutil.copy(initrd, work / "initrd.img")
    pristine = work / "pristine.img"
    qemu.make_disk(root, pristine)
    remove_root(root)
    path = work / "disk.img"
    subprocess.run(["cp", "--sparse=always", str(pristine), str(path)], check=True, timeout=600)
    FIGURES["disk image (copy, mkfs.ext4 -d, add-state-partition.sh)"] = \
        f"{time.monotonic() - started:.1f} s"
    yield Disk(path, pristine, work / "vmlinuz", work / "initrd.img", work)


def boot_and_time(disk: Disk, path: Path, name: str) -> qemu.Boot:
    slug = re.sub(r"\W+", "-", name).strip("-")
    result = qemu.boot(path, disk.kernel, disk.initrd, disk.work, slug, BOOT_BUDGET)
    FIGURES[f"{name}: QEMU start to the guest's report"] = f"{result.seconds_to_report:.1f} s"
    for key, what in (("multi_user_us", "multi-user.target"),
                      ("ActiveEnterTimestampMonotonic", "edgeroom.service READY=1")):
        value = result.report.all(key)
        if value and value[0].isdigit() and int(value[0]):
            FIGURES[f"{name}: kernel start to {what} (guest clock)"] = \
                f"{int(value[0]) / 1e6:.1f} s"
    return result


@pytest.fixture(scope="module")
def first(disk: Disk) -> qemu.Boot:
    return boot_and_time(disk, disk.path, "first boot")


@pytest.fixture(scope="module")
def second(disk: Disk, first: qemu.Boot) -> qemu.Boot:
    return boot_and_time(disk, disk.path, "second boot")


@pytest.fixture(scope="module")
def other_device(disk: Disk, second: qemu.Boot) -> qemu.Boot:
    other = disk.work / "other.img"
    subprocess.run(["cp", "--sparse=always", str(disk.pristine), str(other)], check=True,
                   timeout=600)
    try:
        return boot_and_time(disk, other, "another device's first boot")
    finally:
        other.unlink(missing_ok=True)


def describe(boot: qemu.Boot) -> str:
    journal = boot.report.sections.get("JOURNAL", "")
    return f"report: {boot.report.values}\njournal:\n{journal[-4000:]}"


def state(boot: qemu.Boot) -> dict[str, str]:
    """machine id, SSH host keys, state and config files, by name: their digests."""
    found = {"machine-id": boot.report.one("machine_id")}
    for entry in boot.report.all("host_key") + boot.report.all("file"):
        name, digest = entry.split()
        found[name] = digest
    return found


def secrets(boot: qemu.Boot) -> dict[str, str]:
    """What must differ between two devices: machine id, host keys, password, keys."""
    return {name: digest for name, digest in state(boot).items()
            if re.search(r"machine-id|key|password|secret|token", name)}


def test_boot_reaches_multi_user_and_the_service_runs(first: qemu.Boot) -> None:
    report = first.report
    assert report.one("multi_user") == "active", describe(first)
    assert report.one("system") in ("running", "degraded"), describe(first)
    assert report.all("failed") == [], describe(first)
    assert (report.one("ActiveState"), report.one("SubState")) == ("active", "running"), \
        describe(first)
    assert report.one("NRestarts") == "0", describe(first)


def test_the_page_answers_through_the_forwarded_port(first: qemu.Boot) -> None:
    status, body = first.health
    assert status == 200 and '"ok"' in body, body


def test_the_hardening_holds_in_a_real_boot(first: qemu.Boot) -> None:
    security = first.report.sections["SECURITY"]
    match = re.search(r"Overall exposure level for edgeroom\.service:\s*([0-9.]+)", security)
    assert match, security
    assert float(match.group(1)) <= MAX_EXPOSURE, security
    FIGURES["first boot: systemd-analyze security exposure"] = match.group(1)


def test_the_device_makes_its_own_secrets(first: qemu.Boot) -> None:
    report = first.report
    assert report.all("password") == [] and report.all("empty_password") == []
    assert re.fullmatch(r"[0-9a-f]{32}", report.one("machine_id"))
    keys = {entry.split()[0] for entry in report.all("host_key")}
    assert "ssh_host_ed25519_key" in keys, report.all("host_key")
    files = {entry.split()[0] for entry in report.all("file")}
    assert "/var/lib/edgeroom/web-password.hash" in files, describe(first)
    assert PASSWORD_LOGGED in report.sections["JOURNAL"]


def test_state_and_config_live_on_the_state_partition(first: qemu.Boot) -> None:
    report = first.report
    assert report.one("state_source") == "/dev/vda2", describe(first)
    assert report.one("config_source").startswith("/dev/vda2"), describe(first)
    assert report.one("config_owner") == "edgeroom 700"


def test_a_second_boot_keeps_the_state(first: qemu.Boot, second: qemu.Boot) -> None:
    assert (second.report.one("ActiveState"), second.report.one("SubState")) == \
        ("active", "running"), describe(second)
    assert second.health[0] == 200
    # Every file is still there (their contents may move on); the secrets are the same.
    assert set(state(first)) <= set(state(second)), describe(second)
    assert secrets(second) == secrets(first)
    assert PASSWORD_LOGGED not in second.report.sections["JOURNAL"], "a new password"


def test_another_device_makes_different_secrets(first: qemu.Boot,
                                                other_device: qemu.Boot) -> None:
    assert (other_device.report.one("ActiveState"), other_device.report.one("SubState")) == \
        ("active", "running"), describe(other_device)
    mine, theirs = secrets(first), secrets(other_device)
    assert mine.keys() == theirs.keys()
    same = [name for name in mine if mine[name] == theirs[name]]
    assert same == [], f"the same on two devices: {same}"
