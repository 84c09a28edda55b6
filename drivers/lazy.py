"""A module imported on first use, for the libraries an idle appliance does not need.

numpy alone is about 18 MB of an idle box's memory, and out of a room (nothing
recording, streaming or previewing) nothing runs that computes with it. A module that
uses it writes::

    if TYPE_CHECKING:
        import numpy as np
    else:
        np = lazy_module("numpy", globals(), "np")

The first attribute read (``np.zeros``) imports the real module and puts it in the
module's globals under that name, so every later use is the plain module: nothing is
paid per call. Type checkers see the real import.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for module ``name`` in ``namespace[alias]`` until first used."""

    __slots__ = ("_alias", "_name", "_namespace")

    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._name = name
        self._namespace = namespace
        self._alias = alias

    def load(self) -> ModuleType:
        module = importlib.import_module(self._name)
        if self._namespace.get(self._alias) is self:
            self._namespace[self._alias] = module
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.load(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r} (not imported yet)>"


def lazy_module(name: str, namespace: dict[str, Any], alias: str) -> Any:
    """``namespace[alias]``'s stand-in for module ``name`` (see the module's doc)."""
    return LazyModule(name, namespace, alias)


async def import_off_loop(*names: str) -> None:
    """Import ``names`` in a thread if they are not loaded yet.

    Called where a first use is coming (a mic opening, an encoder or a playback
    starting): numpy takes about 0.2 s of CPU to import here and most of a second on a Pi,
    which the event loop, carrying audio, must not spend.
    """
    missing = [name for name in names if name not in sys.modules]
    if missing:
        await asyncio.to_thread(lambda: [importlib.import_module(name) for name in missing])
