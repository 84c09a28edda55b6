"""The arm64 root, checked in a chroot under qemu-user: the wheels that really ship work."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.image.rootfs import REPO, BuiltRoot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(10800)]
VENV = "/opt/edgeroom/venv"


def test_the_root_is_arm64(arm64_root: BuiltRoot) -> None:
    assert arm64_root.chroot("uname", "-m").stdout.strip() == "aarch64"
    assert arm64_root.chroot("dpkg", "--print-architecture").stdout.strip() == "arm64"
    python = arm64_root.chroot("readlink", "-f", f"{VENV}/bin/python").stdout.strip()
    header = (arm64_root.root / python.lstrip("/")).read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[18:20] == b"\xb7\x00", "an AArch64 ELF"


def test_edgeroom_runs_and_checks_its_config(arm64_root: BuiltRoot) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    out = arm64_root.chroot("edgeroom", "--version", timeout=600)
    assert version in out.stdout + out.stderr
    arm64_root.chroot("edgeroom", "config", "check", "/etc/edgeroom/edgeroom.toml",
                      user="edgeroom", timeout=600)
    bad = arm64_root.root / "tmp/bad.toml"
    bad.write_text("[audio]\nmic_volume = 400\n")
    result = arm64_root.chroot("edgeroom", "config", "check", "/tmp/bad.toml", check=False,
                               timeout=600)
    assert result.returncode == 1
    assert "mic_volume" in result.stdout + result.stderr


def test_the_native_wheels_import(arm64_root: BuiltRoot) -> None:
    code = (
        "import platform, aiortc, av, numpy, alsaaudio, gpiozero, serial, cryptography\n"
        "import pylibsrtp\n"
        "from services.audio.speexdsp import load_library\n"
        "load_library()\n"
        "from services.room.dtls.openssl import Certificate, DtlsConnection\n"
        "from services.room.dtls.srtp import PROFILES, SrtpSession, supported_profiles\n"
        "profiles = supported_profiles()\n"
        "assert 'SRTP_AES128_CM_SHA1_80' in profiles, profiles\n"
        "tx = SrtpSession(profiles[0], bytes(sum(PROFILES[profiles[0]])), outbound=True)\n"
        "assert len(tx.protect(bytes([0x80, 111]) + bytes(10) + bytes(160))) > 172\n"
        "hello = DtlsConnection(Certificate(), server=False, srtp_profiles=profiles)\n"
        "assert not hello.handshake() and hello.datagrams()[0][0] == 22\n"
        "codec = av.CodecContext.create('libopus', 'w')\n"
        "print(platform.machine(), 'numpy', numpy.__version__, 'av', av.__version__,\n"
        "      'aiortc', aiortc.__version__)\n"
    )
    out = arm64_root.chroot(f"{VENV}/bin/python", "-c", code, user="edgeroom", timeout=900)
    words = out.stdout.split()
    assert words[0] == "aarch64", out.stdout
    assert re.fullmatch(r"1\.\d+\.\d+", words[2]), f"numpy held below 2: {out.stdout}"
    # Every compiled module in the venv is an AArch64 one: no x86 wheel slipped in.
    for lib in (arm64_root.root / VENV.lstrip("/")).rglob("*.so*"):
        if lib.is_file() and not lib.is_symlink():
            header = lib.read_bytes()[:20]
            if header[:4] == b"\x7fELF":
                assert header[18:20] == b"\xb7\x00", lib


def test_no_password_key_or_machine_id_in_the_root(arm64_root: BuiltRoot) -> None:
    root = arm64_root.root
    assert not list(root.glob("etc/ssh/ssh_host_*")), "SSH host keys"
    assert (root / "etc/machine-id").read_text() == ""
    assert not (root / "var/lib/systemd/random-seed").exists()
    assert list((root / "var/lib/edgeroom").iterdir()) == []
    for line in (root / "etc/shadow").read_text().splitlines():
        name, password = line.split(":")[:2]
        assert password in ("*", "!", "!*"), name
    # Built with SSH on: the service is enabled, the device makes its keys.
    wants = root / "etc/systemd/system/ssh.service.wants/edgeroom-ssh-hostkeys.service"
    assert wants.is_symlink()
