"""The OS image recipe: the pi-gen stage applied to a real Debian root filesystem.

pi-gen itself needs an arm64 host or qemu and the Raspberry Pi OS archive, so the test
builds the nearest thing it can here: an amd64 Debian bookworm root with ``mmdebstrap``
holding the stage's Debian packages plus what pi-gen's stages 0-2 would have put there
(systemd, passwd, openssh-server, an admin user with a password). Then it runs the stage's
own ``01-run.sh`` and ``01-run-chroot.sh`` on it, exactly as pi-gen does, and looks inside.

The root filesystem tarball and the dependency wheels are cached (keyed by what goes into
them) under ``$EDGEROOM_TEST_CACHE`` (default ``/var/cache/edgeroom-test``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.image.rootfs import (
    ADMIN,
    IMAGE,
    REPO,
    BuiltRoot,
    build_root,
    cached_dependency_wheels,
    cached_rootfs_tarball,
    remove_root,
    run,
)


def shell_scripts() -> list[Path]:
    return sorted(
        p for p in IMAGE.rglob("*")
        if p.is_file() and "work" not in p.relative_to(IMAGE).parts
        and (p.suffix == ".sh" or p.read_bytes().startswith(b"#!/bin/bash"))
    )


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = shell_scripts()
    assert {p.name for p in scripts} >= {
        "build.sh", "assemble-stage.sh", "prerun.sh", "01-run.sh", "01-run-chroot.sh"
    }
    run("shellcheck", "--shell=bash", *scripts)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltRoot]:
    for tool in ("mmdebstrap", "chroot", "systemd-analyze"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed for the image test (scripts/deps.sh installs it)")
    if os.geteuid() != 0:
        pytest.fail("the image test builds a root filesystem and needs root")
    work = tmp_path_factory.mktemp("image")
    built = build_root(work, cached_rootfs_tarball(), [cached_dependency_wheels()])
    yield built
    remove_root(built.root)


def slow(test: Callable[..., None]) -> Callable[..., None]:
    """Slow: the first test sets up the module's root filesystem (minutes on a cold cache)."""
    return pytest.mark.slow(pytest.mark.timeout(1800)(test))


@slow
def test_units_installed_and_enabled(built: BuiltRoot) -> None:
    unit = built.root / "usr/lib/systemd/system/edgeroom.service"
    assert unit.read_text() == (REPO / "systemd/edgeroom.service").read_text()
    link = built.root / "etc/systemd/system/multi-user.target.wants/edgeroom.service"
    assert link.is_symlink()
    assert built.chroot("systemctl", "is-enabled", "edgeroom.service").stdout.strip() == "enabled"
    # The appliance runs its own Janus; the packaged one must not grab the port first.
    state = built.chroot("systemctl", "is-enabled", "janus.service", check=False).stdout.strip()
    assert state == "disabled"
    assert (built.root / "usr/lib/sysusers.d/edgeroom.conf").exists()
    assert (built.root / "usr/lib/tmpfiles.d/edgeroom.conf").exists()


@slow
def test_units_verify_in_the_image_root(built: BuiltRoot) -> None:
    for unit in ("edgeroom.service", "edgeroom-ssh-hostkeys.service"):
        result = run("systemd-analyze", "--man=no", f"--root={built.root}", "verify", unit,
                     check=False, cwd=built.root)
        assert (result.stdout + result.stderr).strip() == "", unit


@slow
def test_appliance_runs_in_the_chroot(built: BuiltRoot) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    out = built.chroot("/opt/edgeroom/venv/bin/edgeroom", "--version")
    assert version in out.stdout + out.stderr
    # The service user can read and check its own config.
    built.chroot("edgeroom", "config", "check", "/etc/edgeroom/edgeroom.toml", user="edgeroom")
    bad = built.root / "tmp/bad.toml"
    bad.write_text("[audio]\nmic_volume = 400\n")
    result = built.chroot("edgeroom", "config", "check", "/tmp/bad.toml", check=False)
    assert result.returncode == 1
    assert "mic_volume" in result.stdout + result.stderr


@slow
def test_native_libraries_load_in_the_image(built: BuiltRoot) -> None:
    # What the appliance loads at run time from Debian packages rather than wheels.
    code = (
        "import alsaaudio, av, numpy, aiortc\n"
        "from services.audio.speexdsp import load_library\n"
        "load_library()\n"
        "print('numpy', numpy.__version__)\n"
    )
    out = built.chroot("/opt/edgeroom/venv/bin/python", "-c", code, user="edgeroom")
    assert out.stdout.startswith("numpy 1."), "numpy held below 2 for picamera2"


@slow
def test_owners_and_modes(built: BuiltRoot) -> None:
    uid, gid = built.ids("edgeroom")
    assert 0 < uid < 1000
    for path, mode in (("etc/edgeroom", 0o700), ("var/lib/edgeroom", 0o700),
                       ("etc/edgeroom/edgeroom.toml", 0o600)):
        st = (built.root / path).stat()
        assert (st.st_uid, st.st_gid) == (uid, gid), path
        assert st.st_mode & 0o7777 == mode, f"{path}: {oct(st.st_mode & 0o7777)}"
    for group in ("audio", "video", "gpio", "dialout"):
        assert "edgeroom" in built.group_members(group), group
    # The code the service runs is root's, and nobody else may change it.
    for item in (built.root / "opt/edgeroom/venv").rglob("*"):
        if item.is_symlink():
            continue
        st = item.lstat()
        assert st.st_uid == 0 and not st.st_mode & 0o022, item
    assert list((built.root / "var/lib/edgeroom").iterdir()) == []


@slow
def test_image_policy_files(built: BuiltRoot) -> None:
    watchdog = (built.root / "etc/systemd/system.conf.d/50-edgeroom-watchdog.conf").read_text()
    assert re.search(r"^RuntimeWatchdogSec=\d+", watchdog, re.M)
    journald = (built.root / "etc/systemd/journald.conf.d/50-edgeroom.conf").read_text()
    assert re.search(r"^SystemMaxUse=\d+M", journald, re.M)
    sshd = (built.root / "etc/ssh/sshd_config.d/50-edgeroom.conf").read_text()
    assert re.search(r"^PasswordAuthentication no", sshd, re.M)
    assert built.chroot("systemctl", "is-enabled", "ssh.service", check=False).stdout.strip() \
        == "disabled"
    assert not (built.root / "tmp/edgeroom-build").exists()


@slow
def test_no_secret_password_or_key_in_the_image(built: BuiltRoot) -> None:
    root = built.root
    assert not list(root.glob("etc/ssh/ssh_host_*")), "SSH host keys"
    for name in ("shadow", "gshadow", "shadow-", "gshadow-"):
        path = root / "etc" / name
        if path.exists():
            for line in path.read_text().splitlines():
                field = line.split(":")[1]
                assert "$" not in field and field != "", f"{name}: {line.split(':')[0]}"
    shadow = dict(line.split(":")[:2] for line in (root / "etc/shadow").read_text().splitlines())
    assert shadow[ADMIN] == "*" and shadow["root"] == "*"
    assert (root / "etc/machine-id").read_text() == ""
    assert not (root / "var/lib/systemd/random-seed").exists()
    assert not [p for p in (root / "etc/ssl/private").iterdir()], "TLS private keys"
    # No private key or password hash anywhere in config, state or home directories.
    pattern = re.compile(rb"PRIVATE KEY-----|\$(?:6|5|y|2b)\$[^\s:]{8,}")
    found = []
    for top in ("etc", "var/lib", "root", "home", "usr/share/edgeroom"):
        for path in (root / top).rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
                if pattern.search(path.read_bytes()):
                    found.append(str(path.relative_to(root)))
    assert found == []


def test_add_state_partition_appends_a_labelled_ext4(tmp_path: Path) -> None:
    if shutil.which("sfdisk") is None or shutil.which("debugfs") is None:
        pytest.fail("sfdisk (fdisk) and debugfs (e2fsprogs) are needed")
    img = tmp_path / "edgeroom.img"
    img.write_bytes(b"")
    os.truncate(img, 48 << 20)
    # The layout pi-gen exports: a FAT boot partition, then the root file system.
    layout = "label: dos\nstart=8192, size=16384, type=c\nstart=24576, size=40960, type=83\n"
    subprocess.run(["sfdisk", "-q", str(img)], input=layout, text=True, check=True)
    run(IMAGE / "add-state-partition.sh", img, "32")

    parts = re.findall(r"start=\s*(\d+), size=\s*(\d+), type=(\w+)",
                       run("sfdisk", "--dump", img).stdout)
    assert parts[:2] == [("8192", "16384", "c"), ("24576", "40960", "83")]
    start, size, kind = parts[2]
    assert (int(start) % 8192, int(size), kind) == (0, 32 * 2048, "83")
    assert img.stat().st_size >= (int(start) + int(size)) * 512
    with img.open("rb") as f:
        f.seek(int(start) * 512 + 1024)
        superblock = f.read(1024)
    assert superblock[0x38:0x3A] == b"\x53\xef", "ext4 magic"
    assert superblock[0x78:0x88].rstrip(b"\0") == b"edgeroom-state"
    listing = run("debugfs", "-R", "ls -l /", f"{img}?offset={int(start) * 512}").stdout
    assert re.search(r"\b40700\b.*\bconfig$", listing, re.M), listing

    # A second run refuses instead of stacking partitions.
    again = run(IMAGE / "add-state-partition.sh", img, "32", check=False)
    assert again.returncode == 1 and "already" in again.stderr
