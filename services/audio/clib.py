"""Loading a C library through ctypes once per process, for the thin bindings
(:mod:`services.audio.speexdsp`, :mod:`services.audio.opus`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class SharedLibrary:
    """A C library found by its usual names (or ``ctypes.util.find_library(short)``),
    given its signatures by ``bind``, and kept once loaded.

    ``missing`` builds the error raised when no candidate loads, from the list of what was
    tried; a call with other ``names`` (tests) neither uses nor fills the cache.
    """

    def __init__(self, names: tuple[str, ...], short: str,
                 bind: Callable[[ctypes.CDLL], None],
                 missing: Callable[[list[str]], Exception]) -> None:
        self.names = names
        self._short = short
        self._bind = bind
        self._missing = missing
        self._lib: ctypes.CDLL | None = None
        self._lock = threading.Lock()

    def load(self, names: tuple[str, ...] | None = None) -> ctypes.CDLL:
        default = names is None or names == self.names
        with self._lock:
            if default and self._lib is not None:
                return self._lib
            candidates = list(self.names if names is None else names)
            found = ctypes.util.find_library(self._short)
            if found and default:
                candidates.append(found)
            errors = []
            for name in candidates:
                try:
                    lib = ctypes.CDLL(name)
                    self._bind(lib)
                except (OSError, AttributeError) as exc:
                    errors.append(f"{name}: {exc}")
                    continue
                if default:
                    self._lib = lib
                log.debug("loaded %s", name)
                return lib
            raise self._missing(errors)
