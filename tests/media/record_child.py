"""A recording process for the power-cut test: records the sim camera and mic until killed.

Usage: ``python -m tests.media.record_child DIR FORMAT SEGMENT_SECONDS``. Every event is
printed as one JSON line on stdout, so the test knows which segments are finished.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from drivers.audio.sim import SimMic
from drivers.camera.sim import SimCamera
from services.media.service import MediaService


def emit(name: str, data: dict[str, Any]) -> None:
    print(json.dumps({"event": name, **data}), flush=True)


async def main(directory: Path, fmt: str, segment_seconds: float) -> None:
    media = MediaService(lambda: SimCamera(320, 240, 30),
                         lambda: SimMic("tone:440", state_dir=directory),
                         record_dir=directory, record_format=fmt,
                         segment_seconds=segment_seconds, encoder="libx264", bitrate_kbps=600,
                         label=lambda: "room1234", emit=emit)
    await media.start_recording()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])))
