"""Atomic file replacement: a reader sees the old content or the new, never a mix.

The temp file goes in the target's own directory (a rename is atomic only within one
file system), is fsynced, renamed over the target, and the directory is fsynced so the
rename itself survives a power cut. A symlinked path is written through to its target,
so the link stays a link. Temp files carry the writer's pid: one whose writer is gone
(killed half-way) is removed by the next write to the same file.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: Writes in this process are serialized: the stale-file sweep must not take a temp file
#: that another thread is still writing.
_LOCK = threading.Lock()


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _temp_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(_temp_prefix(path)) + r"(\d+)\.[^.]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: Path | str) -> list[Path]:
    """Delete temp files of ``path`` left by writers that no longer run; returns them."""
    target = Path(os.path.realpath(path))
    pattern = _temp_pattern(target)
    removed: list[Path] = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        m = pattern.match(name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and _pid_alive(pid):
            continue
        try:
            os.unlink(target.parent / name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot remove stale temp file %s: %s", target.parent / name, exc)
            continue
        removed.append(target.parent / name)
    if removed:
        log.info("removed %d stale temp file(s) of %s", len(removed), target)
    return removed


def fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: Path | str, data: bytes, mode: int = 0o600,
                 owner: tuple[int, int] | None = None) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content, never a mix.

    Temp file in the same directory, fsync, rename over, fsync the directory. If ``path``
    is a symlink, its target is replaced and the link is kept. Blocking: from a coroutine,
    call it through ``asyncio.to_thread``. ``owner`` (uid, gid) keeps the file's owner
    when root rewrites it (ignored where that is not allowed).
    """
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        remove_stale_temps(target)
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(target)}{os.getpid()}.",
                                   suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                if owner is not None and owner != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(fh.fileno(), *owner)
                    except PermissionError:
                        pass
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        fsync_dir(target.parent)
