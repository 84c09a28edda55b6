"""Child processes that die with the appliance, however the appliance ends.

A child started through :func:`child_options` gets ``PR_SET_PDEATHSIG`` = SIGKILL: the
kernel kills it when the thread that started it exits, so a SIGKILLed or crashed
appliance leaves no Janus holding its port. It also gets a process group of its own, so
that stopping it reaches anything it started and a terminal's Ctrl-C reaches only the
appliance, which then stops its children in order. (Under systemd,
``KillMode=control-group`` does the same for the whole unit.)

Children must be started from the event loop's thread, which lives as long as the
appliance: the death signal follows the starting thread, not the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        log.warning("prctl unavailable: child processes will not die with the appliance")
        return None
    return prctl


# Resolved once here: the code that runs in the child between fork and exec must not
# import or look anything up.
_PRCTL = _load_prctl()


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the death signal was armed
            os._exit(1)
    return preexec


def child_options() -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen`` / ``asyncio.create_subprocess_exec``."""
    return {"preexec_fn": _die_with(os.getpid()), "start_new_session": True}


def kill_group(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal the process group of a child started with :func:`child_options`."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        log.warning("cannot signal process group %d: %s", pid, exc)
