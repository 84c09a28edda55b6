"""The arm64 root filesystem: bookworm arm64 plus the stage, built through qemu-user.

The Raspberry Pi OS archive cannot be reached from here, so the root is Debian bookworm
arm64 with the stage's Debian packages (Raspberry Pi OS-only ones left out), Debian's arm64
kernel to boot it with, and the stage's own scripts run on it. The dependency wheels are
the aarch64 ones from the package index; pyalsaaudio, published as source only, is compiled
once inside an arm64 root (gcc under qemu-user) and cached with them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.image.rootfs import (
    CACHE,
    CHROOT_PATH,
    CONSTRAINTS,
    cached_rootfs_tarball,
    dependencies,
    native_arch,
    prune,
    remove_root,
    run,
    unmount_below,
)

ARCH = "arm64"
# What Raspberry Pi OS Lite boots with that a bare Debian root lacks, and the kernel.
BOOT_PACKAGES = ("systemd-sysv", "udev", "kmod", "dbus", "linux-image-arm64", "e2fsprogs",
                 "iproute2")
PYTHON = "3.11"  # bookworm's
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Compiling pyalsaaudio: the same packages the stage itself would install and purge.
BUILD_PACKAGES = ("gcc", "libc6-dev", "libasound2-dev", "python3-dev")


def ensure_binfmt() -> None:
    """qemu-aarch64 registered with binfmt_misc, so that arm64 programs run in a chroot."""
    if native_arch() == ARCH:
        return
    if not (BINFMT / "status").exists():
        run("mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT)
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists() and shutil.which("update-binfmts"):
        run("update-binfmts", "--enable", "qemu-aarch64", check=False)
    if not entry.exists():
        raise AssertionError(
            "qemu-aarch64 is not registered with binfmt_misc: install qemu-user-static and "
            "binfmt-support (scripts/deps.sh does)")
    text = entry.read_text()
    if not text.startswith("enabled") or "flags: " not in text or "F" not in \
            text.split("flags: ", 1)[1].split()[0]:
        raise AssertionError(f"{entry} must be enabled with the F flag (qemu-user-static):\n{text}")


# The initramfs, built once and small. Debian's default (MODULES=most, every storage and
# file system driver) takes over half an hour under qemu-user, and the kernel's postinst and
# initramfs-tools' trigger would each build it. So update-initramfs is diverted to a no-op
# while the packages go in, and run once at the end with just what mounting the root in
# QEMU's virt machine needs (tests/arm64/qemu.py: a virtio-blk-pci disk holding ext4, which
# needs crc32c for its checksums). The other virtio devices (net, rng, serial) are loaded by
# udev from the root once it is mounted. MODULES=dep cannot work here: it looks at the
# hardware the build runs on.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "crc32c", "ext4")
UPDATE_INITRAMFS = "/usr/sbin/update-initramfs"
INITRAMFS_HOOKS = (
    f'--essential-hook=chroot "$1" dpkg-divert --local --rename --add {UPDATE_INITRAMFS}',
    f"--essential-hook=printf '#!/bin/sh\\nexit 0\\n' > \"$1{UPDATE_INITRAMFS}\"",
    f'--essential-hook=chmod 755 "$1{UPDATE_INITRAMFS}"',
    f'--customize-hook=rm "$1{UPDATE_INITRAMFS}"',
    f'--customize-hook=chroot "$1" dpkg-divert --local --rename --remove {UPDATE_INITRAMFS}',
    '--customize-hook=echo MODULES=list > "$1/etc/initramfs-tools/conf.d/edgeroom-test"',
    f"--customize-hook=printf '%s\\n' {' '.join(INITRAMFS_MODULES)}"
    ' >> "$1/etc/initramfs-tools/modules"',
    '--customize-hook=for v in $(ls "$1/usr/lib/modules"); do'
    ' chroot "$1" update-initramfs -c -k "$v" || exit 1; done',
)


def rootfs_tarball() -> Path:
    # A cold build runs every maintainer script under qemu-user: tens of minutes.
    return cached_rootfs_tarball(ARCH, BOOT_PACKAGES, timeout=9000, hooks=INITRAMFS_HOOKS)


def _compile_pyalsaaudio(tarball: Path, sdist: Path, tools: Path, out: Path) -> None:
    root = out / "alsa-build-root"
    root.mkdir()
    try:
        run("tar", "-xpf", tarball, "--numeric-owner", "-C", root)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        shutil.copy(sdist, root / "tmp" / sdist.name)
        shutil.copytree(tools, root / "tmp/build-tools")
        run("mount", "-t", "proc", "proc", root / "proc")
        env = {"PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8",
               "DEBIAN_FRONTEND": "noninteractive"}
        run("chroot", root, "apt-get", "update", "-qq", env=env, timeout=900)
        run("chroot", root, "apt-get", "install", "-y", "-qq", "--no-install-recommends",
            *BUILD_PACKAGES, env=env, timeout=1800)
        run("chroot", root, "python3", "-m", "venv", "/tmp/build-venv", env=env, timeout=900)
        run("chroot", root, "/tmp/build-venv/bin/pip", "install", "--quiet", "--no-index",
            "--disable-pip-version-check", "--find-links", "/tmp/build-tools",
            "setuptools", "wheel", env=env, timeout=900)
        run("chroot", root, "/tmp/build-venv/bin/pip", "wheel", "--no-deps", "--no-index",
            "--no-build-isolation", "--disable-pip-version-check", "-w", "/tmp/alsa-wheel",
            f"/tmp/{sdist.name}", env=env, timeout=1800)
        built = list((root / "tmp/alsa-wheel").glob("pyalsaaudio-*aarch64.whl"))
        assert built, "no aarch64 pyalsaaudio wheel was built"
        for wheel in built:
            shutil.copy(wheel, out / wheel.name)
    finally:
        unmount_below(root)
        remove_root(root)


def cached_wheels(tarball: Path) -> Path:
    """aarch64 wheels of the appliance's dependencies (pyalsaaudio compiled in arm64)."""
    deps = dependencies()
    ident = f"{ARCH} {PYTHON} {PLATFORMS} {sorted(deps)} {CONSTRAINTS.read_text()}"
    wheels = CACHE / f"wheels{ARCH}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"
    if wheels.exists():
        return wheels
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = wheels.with_name(wheels.name + f".partial-{os.getpid()}")
    partial.mkdir()
    try:
        binary = [d for d in deps if not d.lower().startswith("pyalsaaudio")]
        source = [d for d in deps if d.lower().startswith("pyalsaaudio")]
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        run(sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", *platforms, "--python-version", PYTHON,
            "--implementation", "cp", "-d", partial, "-c", CONSTRAINTS, *binary, timeout=900)
        sdists, tools = partial / "sdist", partial / "tools"
        run(sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--no-binary=:all:", "-d", sdists, *source, timeout=300)
        run(sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "-d", tools, "setuptools", "wheel", timeout=300)
        for sdist in sorted(sdists.iterdir()):
            _compile_pyalsaaudio(tarball, sdist, tools, partial)
        shutil.rmtree(sdists)
        shutil.rmtree(tools)
        if not wheels.exists():  # another run may have finished first
            partial.rename(wheels)
        prune(wheels)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(partial)], check=False)
    return wheels
