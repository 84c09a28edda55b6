"""Child processes that do not outlive the run that started them.

A Janus, a pulseaudio, an appliance or a forwarder left running after its test or
benchmark was killed keeps its ports, its ptys and its CPU, and the next run meets it: it
takes the first bytes of a serial line whose pts number is handed out again, or answers on
a port another run now owns. :func:`child_setup` makes the ``preexec_fn`` for every process a
test or a benchmark starts: the kernel sends it SIGKILL when the starting process dies,
however it dies (SIGKILL included), and it writes no core file.

``ip netns exec``, ``chrt`` and the Python interpreter all ``exec`` their command, so the
setting reaches the process that does the work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def child_setup() -> Callable[[], None]:
    """The ``preexec_fn`` for a child of this process: die with it, no core dumps.

    The death signal is tied to the thread that forks; every test and benchmark starts
    its processes from its main thread, which lives as long as the run.
    """
    parent = os.getpid()

    def setup() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return setup
