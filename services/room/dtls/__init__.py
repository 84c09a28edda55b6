"""DTLS-SRTP on the system's libssl and libsrtp2 (ctypes), in place of aiortc's pyOpenSSL,
cryptography and pylibsrtp.

:func:`install` makes ``import aiortc.rtcdtlstransport`` give
:mod:`services.room.dtls.transport`; it runs when the ``services`` package is imported,
before anything imports aiortc, so every aiortc peer connection in the process uses it
and the three libraries (about 18 MB of the room's memory) are never loaded. In a
process that imported aiortc first, aiortc keeps its own and :func:`install` says so.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import sys
from types import ModuleType

log = logging.getLogger(__name__)

ALIASED = "aiortc.rtcdtlstransport"
MODULE = "services.room.dtls.transport"


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds :data:`ALIASED` as :data:`MODULE`."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != ALIASED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        # aiortc's package is half imported here (its __init__ asks for this module);
        # ours imports aiortc's submodules, which works as it does for aiortc's own
        return importlib.import_module(MODULE)

    def exec_module(self, module: ModuleType) -> None:
        pass


def install() -> bool:
    """Whether aiortc will use (or already uses) the room's transport (idempotent)."""
    if any(isinstance(finder, _Alias) for finder in sys.meta_path):
        return True
    loaded = sys.modules.get(ALIASED)
    if loaded is not None and loaded.__name__ != MODULE:
        log.warning("aiortc was imported before the room's DTLS transport was installed: "
                    "it keeps its own (pyOpenSSL, cryptography, pylibsrtp)")
        return False
    sys.meta_path.insert(0, _Alias())
    return True


def installed() -> bool:
    """Whether the aiortc in this process runs on the room's transport."""
    module = sys.modules.get(ALIASED)
    return module is not None and module.__name__ == MODULE
