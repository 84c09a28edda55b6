"""Screens: the :class:`Display` interface, the KMS backend (on the board) and the sim.

:func:`open_display` picks the backend; the returned display is not yet open
(``display.open()``, blocking, takes the screen and raises :class:`DisplayError`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Literal

from drivers.display.base import (
    PIXEL_FORMAT,
    BadResolution,
    Display,
    DisplayError,
    Rect,
    new_canvas,
    parse_resolution,
)

__all__ = [
    "PIXEL_FORMAT",
    "BadResolution",
    "Display",
    "DisplayError",
    "Rect",
    "choose_backend",
    "new_canvas",
    "open_display",
    "parse_resolution",
]

log = logging.getLogger(__name__)

Backend = Literal["auto", "kms", "sim", "off"]
DRM_DIR = "/dev/dri"


def kms_available() -> str | None:
    """None when a KMS screen can be tried, else why not."""
    if importlib.util.find_spec("pykms") is None:
        return "pykms (python3-kms++) does not import"
    try:
        cards = [n for n in os.listdir(DRM_DIR) if n.startswith("card")]
    except OSError:
        cards = []
    if not cards:
        return f"no DRM device in {DRM_DIR}"
    return None


def choose_backend(wanted: Backend, *, sim: bool) -> tuple[str, str]:
    """The display backend to use (``kms``, ``sim`` or ``off``) and why."""
    if wanted != "auto":
        return wanted, f'display.backend = "{wanted}"'
    missing = kms_available()
    if missing is None:
        return "kms", "auto: pykms and a DRM device are present"
    return "off", f"auto: {missing}"


def open_display(backend: str, resolution: str = "auto") -> Display:
    """A display of ``backend`` (``kms`` or ``sim``) at ``resolution``."""
    size = parse_resolution(resolution)
    if backend == "sim":
        from drivers.display.sim import DEFAULT_SIZE, SimDisplay

        width, height = size or DEFAULT_SIZE
        return SimDisplay(width, height)
    if backend == "kms":
        from drivers.display.kms import KmsDisplay

        return KmsDisplay(size)
    raise DisplayError(f"no display backend {backend!r}")
