"""The OS name of a thread (what ``top -H``, ``ps -L`` and ``/proc/<pid>/task/*/comm``
show), from its Python name, so the appliance's threads can be told apart from outside."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger(__name__)

PR_SET_NAME = 15
#: The kernel keeps 15 characters of a thread's name.
MAX_NAME = 15

_libc: ctypes.CDLL | None = None


def name_this_thread(name: str | None = None) -> None:
    """Give the calling thread ``name`` (default: its Python name), cut to 15 characters;
    where the C library cannot, nothing changes."""
    global _libc
    text = (name or threading.current_thread().name)[:MAX_NAME]
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        _libc.prctl(PR_SET_NAME, ctypes.c_char_p(text.encode("ascii", "replace")), 0, 0, 0)
    except (OSError, AttributeError) as exc:
        log.debug("cannot name thread %r: %s", text, exc)
