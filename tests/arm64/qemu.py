"""Booting the arm64 root in QEMU: a disk image from the root, the VM, the boot's report.

The disk is what a flashed card holds for a read-only-root build: an MBR with the root
file system (made with ``mkfs.ext4 -d``, no loop device) and the ``edgeroom-state``
partition that ``image/add-state-partition.sh`` appends. QEMU emulates a ``virt`` board with
a Cortex-A72 (the Raspberry Pi 4's core) in software, boots the root's own Debian kernel
and initrd, and forwards a loopback port to the page. The guest cannot reach anything
else: its user-mode network is ``restrict=on``.

The guest reports over a virtio serial port (``edgeroom-test-report``, test only): the
host reads ``key=value`` lines up to ``REPORT-END``, checks the page, then answers
``poweroff``. The serial console goes to a log file.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.image.rootfs import IMAGE, run

GUEST = Path(__file__).resolve().parent / "guest"
PORT_NAME = "org.edgeroom.test"
ROOT_START = 8192  # sectors: the root partition starts at 4 MiB, like pi-gen's
STATE_MIB = 64
MEMORY_MIB = 2048  # a 2 GB Raspberry Pi 4


# The stage's fstab gives the state partition 10 s to appear; under emulation udev's
# coldplug alone takes longer than that, so the test allows 18 times as long.
DEVICE_TIMEOUT = ("x-systemd.device-timeout=10s", "x-systemd.device-timeout=180s")


def prepare_boot_root(root: Path) -> None:
    """Test-only additions: DHCP, longer limits for emulation, the report unit."""
    fstab = root / "etc/fstab"
    text = fstab.read_text()
    assert DEVICE_TIMEOUT[0] in text, f"the stage's fstab changed:\n{text}"
    fstab.write_text(text.replace(*DEVICE_TIMEOUT))
    network = root / "etc/systemd/network"
    network.mkdir(parents=True, exist_ok=True)
    shutil.copy(GUEST / "10-edgeroom-test.network", network)
    dropin = root / "etc/systemd/system/edgeroom.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    shutil.copy(GUEST / "50-emulation.conf", dropin)
    shutil.copy(GUEST / "edgeroom-test-report.service", root / "etc/systemd/system")
    shutil.copy(GUEST / "edgeroom-test-report", root / "usr/local/sbin")
    run("systemctl", f"--root={root}", "enable", "systemd-networkd.service",
        "edgeroom-test-report.service")


def kernel_and_initrd(root: Path) -> tuple[Path, Path]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    assert kernels and initrds, "linux-image-arm64 left no kernel and initrd in /boot"
    return kernels[-1], initrds[-1]


def make_disk(root: Path, disk: Path) -> None:
    """An MBR disk: the root file system at 4 MiB, then the state partition."""
    used = int(run("du", "-sbx", root).stdout.split()[0])
    fs_mib = int(used * 1.3) // (1 << 20) + 384
    disk.unlink(missing_ok=True)
    run("truncate", "-s", f"{ROOT_START * 512 + fs_mib * (1 << 20)}", disk)
    layout = f"label: dos\nstart={ROOT_START}, size={fs_mib * 2048}, type=83\n"
    subprocess.run(["sfdisk", "-q", str(disk)], input=layout, text=True, check=True,
                   timeout=60)
    run("mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", root,
        "-E", f"offset={ROOT_START * 512}", disk, f"{fs_mib * 1024}k", timeout=900)
    run(IMAGE / "add-state-partition.sh", disk, str(STATE_MIB), timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Report:
    values: dict[str, list[str]] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)

    def one(self, key: str) -> str:
        values = self.values.get(key, [])
        assert len(values) == 1, f"{key}: {values}"
        return values[0]

    def all(self, key: str) -> list[str]:
        return self.values.get(key, [])

    @classmethod
    def parse(cls, text: str) -> Report:
        report = cls()
        section: str | None = None
        lines: list[str] = []
        for line in text.splitlines():
            if line in ("REPORT-BEGIN", "REPORT-END"):
                continue
            if match := re.fullmatch(r"([A-Z]+)-BEGIN", line):
                section, lines = match.group(1), []
            elif section and line == f"{section}-END":
                report.sections[section] = "\n".join(lines)
                section = None
            elif section:
                lines.append(line)
            elif "=" in line:
                key, value = line.split("=", 1)
                report.values.setdefault(key, []).append(value)
        return report


@dataclass
class Boot:
    report: Report
    health: tuple[int, str]
    seconds_to_report: float
    console: Path


def qemu_command(disk: Path, kernel: Path, initrd: Path, console: Path, sock: Path,
                 port: int) -> list[str]:
    return [
        "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2",
        "-m", str(MEMORY_MIB), "-nodefaults", "-display", "none", "-no-reboot",
        "-serial", f"file:{console}",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "root=/dev/vda1 rw console=ttyAMA0 panic=-1",
        "-drive", f"file={disk},format=raw,if=none,id=disk0",
        "-device", "virtio-blk-pci,drive=disk0",
        "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:8080",
        "-device", "virtio-net-pci,netdev=net0,romfile=",  # no PXE ROM: direct kernel boot
        "-device", "virtio-rng-pci",
        "-chardev", f"socket,id=report,path={sock},server=on,wait=off",
        "-device", "virtio-serial-pci",
        "-device", f"virtserialport,chardev=report,name={PORT_NAME}",
    ]


def _connect(sock_path: Path, proc: subprocess.Popen[bytes], deadline: float) -> socket.socket:
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"QEMU exited with {proc.returncode} before the guest booted")
        if sock_path.exists():
            client = socket.socket(socket.AF_UNIX)
            try:
                client.connect(str(sock_path))
                return client
            except OSError:
                client.close()
        if time.monotonic() > deadline:
            raise AssertionError("QEMU's report socket never appeared")
        time.sleep(0.2)


def _read_report(client: socket.socket, deadline: float, console: Path) -> str:
    data = b""
    while b"\nREPORT-END" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            tail = console.read_text(errors="replace")[-6000:]
            raise AssertionError(f"no boot report in time; console tail:\n{tail}")
        client.settimeout(min(remaining, 10))
        try:
            chunk = client.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            raise AssertionError("the report port closed before REPORT-END")
        data += chunk
    return data.decode(errors="replace")


def get_health(port: int, attempts: int = 10) -> tuple[int, str]:
    error: Exception | None = None
    for _ in range(attempts):
        try:
            url = f"http://127.0.0.1:{port}/api/health"
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.status, response.read().decode()
        except OSError as exc:
            error = exc
            time.sleep(3)
    raise AssertionError(f"GET /api/health through the forwarded port failed: {error}")


def boot(disk: Path, kernel: Path, initrd: Path, work: Path, name: str,
         budget: float) -> Boot:
    """Boot once; return the guest's report and the page's answer; power off cleanly."""
    console = work / f"console-{name}.log"
    sock = work / f"report-{name}.sock"
    port = free_port()
    log = (work / f"qemu-{name}.log").open("wb")
    started = time.monotonic()
    deadline = started + budget
    proc = subprocess.Popen(qemu_command(disk, kernel, initrd, console, sock, port),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        client = _connect(sock, proc, started + 60)
        with client:
            text = _read_report(client, deadline, console)
            (work / f"report-{name}.txt").write_text(text)
            seconds = time.monotonic() - started
            health = get_health(port)
            client.sendall(b"poweroff\n")
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired as exc:
                raise AssertionError("the guest did not power off within 300 s") from exc
        return Boot(Report.parse(text), health, seconds, console)
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        log.close()
        sock.unlink(missing_ok=True)
