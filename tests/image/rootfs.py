"""Building a root filesystem from the pi-gen stage, for the amd64 and the arm64 image tests.

A Debian bookworm root is made with ``mmdebstrap`` from the stage's Debian packages plus what
pi-gen's stages 0-2 would have put there (systemd, passwd, openssh-server, an admin user with
a password); then the stage's own ``01-run.sh`` and ``01-run-chroot.sh`` run on it, exactly as
pi-gen runs them. A foreign architecture (arm64 on an x86 host) runs through qemu-user, which
binfmt_misc starts for every arm64 program in the chroot.

Root filesystem tarballs and wheels are cached (keyed by what goes into them) under
``$EDGEROOM_TEST_CACHE`` (default ``/var/cache/edgeroom-test``).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "image"
STAGE = IMAGE / "stage-edgeroom"
SUBSTAGE = STAGE / "00-edgeroom"
CONSTRAINTS = SUBSTAGE / "files" / "constraints.txt"
CACHE = Path(os.environ.get("EDGEROOM_TEST_CACHE", "/var/cache/edgeroom-test"))
SUITE = "bookworm"
VARIANT = "apt"
# What pi-gen's stages 0-2 (Raspberry Pi OS Lite) bring that the stage relies on or must undo.
BASE_PACKAGES = ["systemd", "passwd", "openssh-server"]
ADMIN = "admin"
# A SHA-512 crypt-style hash, as pi-gen's stage1 leaves for the first user.
ADMIN_HASH = (
    "$6$edgeroomtest$0IvZ8R5nYH9Wj4tq3H9FGtHq7d3zNxJ8QnJ0mS4F8vC2a3i8aH0eV7x2XyZ1b9c8d7e6f5g4h3i2j1k0"
)
CHROOT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def native_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def run(
    *args: str | Path,
    timeout: float = 600,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: IO[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
        env=env, cwd=cwd, stdin=stdin,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def stage_packages() -> list[str]:
    """The Debian packages the stage installs (Raspberry Pi OS-only ones left out)."""
    packages = []
    for name in ("00-packages", "00-packages-nr"):
        for line in (SUBSTAGE / name).read_text().splitlines():
            if "rpi-only" in line:
                continue
            packages += line.split("#", 1)[0].split()
    return packages


def prune(keep: Path) -> None:
    """Drop older cache entries of the same kind (their key no longer matches)."""
    prefix = keep.name.rsplit("-", 1)[0] + "-"
    for old in CACHE.glob(prefix + "*"):
        if old != keep and ".partial-" not in old.name:
            subprocess.run(["rm", "-rf", str(old)], check=False)


def cached_rootfs_tarball(arch: str | None = None, extra: tuple[str, ...] = (),
                          timeout: float = 1200, hooks: tuple[str, ...] = ()) -> Path:
    """The stage's packages plus ``extra`` in a bookworm root of ``arch`` (default: native).

    ``hooks`` are further ``mmdebstrap`` options (``--essential-hook=...``, ...); they are
    part of the cache key.
    """
    arch = arch or native_arch()
    packages = sorted(set(stage_packages() + BASE_PACKAGES + list(extra)))
    ident = f"{SUITE} {VARIANT} {' '.join(packages)}"
    if arch != native_arch():
        ident += f" {arch}"
    if hooks:
        ident += f" {hooks}"
    key = hashlib.sha256(ident.encode()).hexdigest()[:16]
    name = f"rootfs-{SUITE}-{key}" if arch == native_arch() else f"rootfs-{SUITE}{arch}-{key}"
    tarball = CACHE / f"{name}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(f".partial-{os.getpid()}")
    try:
        run("mmdebstrap", f"--variant={VARIANT}", f"--arch={arch}", "--format=tar",
            f"--include={','.join(packages)}", *hooks,
            SUITE, partial, timeout=timeout)
        if not tarball.exists():  # another run may have finished first
            partial.rename(tarball)
        prune(tarball)
    finally:
        partial.unlink(missing_ok=True)
    return tarball


def dependencies() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps: list[str] = project["dependencies"]
    return deps


def cached_dependency_wheels() -> Path:
    """Wheels of the appliance's dependencies, built here (pyalsaaudio is source-only)."""
    deps = dependencies()
    ident = f"{sys.version_info[:2]} {sorted(deps)} {CONSTRAINTS.read_text()}"
    wheels = CACHE / f"wheels-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"
    if wheels.exists():
        return wheels
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = wheels.with_name(wheels.name + f".partial-{os.getpid()}")
    try:
        run(sys.executable, "-m", "pip", "wheel", "--quiet", "-w", partial,
            "-c", CONSTRAINTS, *deps, timeout=900)
        if not wheels.exists():  # another run may have finished first
            partial.rename(wheels)
        prune(wheels)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return wheels


@dataclass
class BuiltRoot:
    root: Path
    stage: Path
    log: str

    def chroot(self, *args: str, user: str | None = None, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        spec = [f"--userspec={user}:{user}"] if user else []
        env = {"PATH": CHROOT_PATH, "HOME": "/", "LANG": "C.UTF-8"}
        return run("chroot", *spec, self.root, *args, timeout=timeout, check=check, env=env)

    def ids(self, name: str) -> tuple[int, int]:
        for line in (self.root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2]), int(fields[3])
        raise AssertionError(f"no user {name} in the image")

    def group_members(self, name: str) -> list[str]:
        for line in (self.root / "etc/group").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return [m for m in fields[3].split(",") if m]
        raise AssertionError(f"no group {name} in the image")


def unmount_below(root: Path) -> None:
    mounts = [
        line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1].startswith(str(root) + "/")
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)


def remove_root(root: Path) -> None:
    unmount_below(root)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def build_root(work: Path, tarball: Path, wheel_dirs: list[Path],
               options: dict[str, str] | None = None, timeout: float = 900) -> BuiltRoot:
    """Unpack ``tarball`` in ``work``, then run the assembled stage on it as pi-gen does.

    ``options`` are the stage's build options (``EDGEROOM_SSH``, ``EDGEROOM_READONLY_ROOT``);
    pip installs from ``wheel_dirs`` only.
    """
    dist = work / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, REPO)

    stage = work / "stage-edgeroom"
    env = {**os.environ, "EDGEROOM_PIP_OFFLINE": "1", "EDGEROOM_SSH": "0", **(options or {})}
    run(IMAGE / "assemble-stage.sh", stage, dist, *wheel_dirs, env=env)

    root = work / "rootfs"
    root.mkdir()
    run("tar", "-xpf", tarball, "--numeric-owner", "-C", root)
    # What pi-gen's stage1 leaves: a first user and root with password hashes.
    run("chroot", root, "useradd", "-m", "-s", "/bin/bash", "-p", ADMIN_HASH, ADMIN)
    run("chroot", root, "usermod", "-p", ADMIN_HASH, "root")
    assert list(root.glob("etc/ssh/ssh_host_*_key")), "openssh-server made host keys"

    log = []
    try:
        # The tarball has its own /dev nodes; only /proc is mounted.
        run("mount", "-t", "proc", "proc", root / "proc")
        result = run(stage / "00-edgeroom/01-run.sh", env={**os.environ, "ROOTFS_DIR": str(root)})
        log.append(result.stderr)
        with (stage / "00-edgeroom/01-run-chroot.sh").open() as script:
            result = run("chroot", root, "/bin/bash", "-e", stdin=script, timeout=timeout,
                         env={"PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8"})
        log.append(result.stderr)
    finally:
        unmount_below(root)
    return BuiltRoot(root=root, stage=stage, log="\n".join(log))
