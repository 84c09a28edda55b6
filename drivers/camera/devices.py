"""Which cameras this machine has: V4L2 nodes (with their driver names) and libcamera cameras."""

from __future__ import annotations

import glob
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VideoNode:
    """A ``/dev/video*`` node and the name its driver gives it (sysfs)."""

    path: str
    name: str

    def label(self) -> str:
        return f"{self.path} ({self.name})" if self.name else self.path


def _natural(path: str) -> tuple[str, int]:
    m = re.match(r"(.*?)(\d+)$", path)
    return (m.group(1), int(m.group(2))) if m else (path, -1)


def list_video_nodes(dev_dir: str = "/dev", sys_dir: str = "/sys/class/video4linux"
                     ) -> list[VideoNode]:
    """Every ``video*`` node under ``dev_dir``, sorted by number, named from sysfs."""
    nodes = []
    for path in sorted(glob.glob(os.path.join(dev_dir, "video*")), key=_natural):
        try:
            name = Path(sys_dir, os.path.basename(path), "name").read_text(
                encoding="utf-8", errors="replace").strip()
        except OSError:
            name = ""
        nodes.append(VideoNode(path, name))
    return nodes


def describe_video_nodes(dev_dir: str = "/dev") -> str:
    nodes = list_video_nodes(dev_dir)
    if not nodes:
        return f"no {os.path.join(dev_dir, 'video*')} devices present"
    return "present: " + ", ".join(n.label() for n in nodes)


def holders_of(path: str) -> list[str]:
    """``"pid (command)"`` of every process that has ``path`` open (as far as /proc shows)."""
    try:
        target = os.path.realpath(path)
    except OSError:
        return []
    holders = []
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        pid = fd_dir.split("/")[2]
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) == target:
                    break
            except OSError:
                continue
        else:
            continue
        try:
            comm = Path("/proc", pid, "comm").read_text(encoding="utf-8").strip()
        except OSError:
            comm = "?"
        holders.append(f"{pid} ({comm})")
    return holders


def picamera2_importable() -> bool:
    try:
        import picamera2  # noqa: F401
    except Exception:  # ImportError, or a broken libcamera binding raising anything
        return False
    return True


def list_libcamera_cameras() -> list[dict[str, Any]] | None:
    """libcamera's cameras as picamera2 reports them; None where picamera2 does not import."""
    if not picamera2_importable():
        return None
    from picamera2 import Picamera2

    try:
        infos = Picamera2.global_camera_info()
    except Exception as exc:  # libcamera can fail in many ways; inventory must not
        log.warning("picamera2 could not list cameras: %s", exc)
        return []
    cameras = []
    for number, info in enumerate(infos):
        cameras.append({
            "number": int(info.get("Num", number)),
            "model": str(info.get("Model", "")),
            "id": str(info.get("Id", "")),
            "location": info.get("Location"),
        })
    return cameras
