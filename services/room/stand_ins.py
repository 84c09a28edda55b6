"""Modules of aiortc and aioice that the room replaces with its own, under their names.

:func:`install` makes ``import aiortc.rtcdtlstransport`` give
:mod:`services.room.dtls.transport` (DTLS-SRTP on the system's OpenSSL, so
pyOpenSSL, cryptography and pylibsrtp, about 14 MB of the room's memory, are never
loaded) and ``import aioice.mdns`` give :mod:`services.room.mdns` (dnspython, 6 MB, only
once an mDNS name is resolved). It runs when the ``services`` package is imported,
before anything imports aiortc, so every peer connection in the process uses them. In a
process that imported aiortc or aioice first, they keep their own, and :func:`install`
says so.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

#: the module replaced -> the room's module that stands in for it
STAND_INS = {
    "aiortc.rtcdtlstransport": "services.room.dtls.transport",
    "aioice.mdns": "services.room.mdns",
}


class _StandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds each module of :data:`STAND_INS` as the room's own."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in STAND_INS:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        # the replaced module's package is half imported here (its __init__ asks for
        # it); the room's module imports that package's other submodules, which works
        # as it does for the package's own modules
        return importlib.import_module(STAND_INS[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        pass


def install() -> bool:
    """Whether every stand-in will be (or already is) used (idempotent)."""
    if any(isinstance(finder, _StandIn) for finder in sys.meta_path):
        return True
    early = [name for name, ours in STAND_INS.items()
             if name in sys.modules and sys.modules[name].__name__ != ours]
    sys.meta_path.insert(0, _StandIn())
    if early:
        log.warning("imported before the room's own could stand in, so kept: %s",
                    ", ".join(early))
    return not early


def installed(name: str) -> bool:
    """Whether the module ``name`` of :data:`STAND_INS` is the room's in this process."""
    module = sys.modules.get(name)
    return module is not None and module.__name__ == STAND_INS[name]


def original(name: str) -> ModuleType:
    """The module ``name`` of :data:`STAND_INS` as its package ships it, loaded once from
    its file under another name (``aioice._own_mdns`` for ``aioice.mdns``)."""
    package, _, leaf = name.rpartition(".")
    own = f"{package}._own_{leaf}"
    module = sys.modules.get(own)
    if module is None:
        path = Path(importlib.import_module(package).__file__ or "").parent / f"{leaf}.py"
        spec = importlib.util.spec_from_file_location(own, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[own] = module
        spec.loader.exec_module(module)
    return module
