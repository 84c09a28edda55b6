"""Numpy views onto the planes of an ``av.VideoFrame`` (no copies)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    np = lazy_module("numpy", globals(), "np")


def plane_rows(plane: Any, rows: int, cols: int) -> npt.NDArray[np.uint8]:
    """A writable ``rows x cols`` view of a frame plane, skipping the line padding."""
    data = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
    return data[:rows, :cols]
