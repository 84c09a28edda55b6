"""A plain aiortc room member, for reference figures: the room session alone, with
aiortc's own H.264 encoder fed by the sim camera, and no appliance services around it.

``python -m bench.aiortc_client URL ROOM SECONDS [WIDTH HEIGHT FPS [MIC]]`` (run it
inside the benchmark's namespace); it joins, publishes mic and camera, receives (and
decodes, with aiortc's decoders as aiortc opens them: FFmpeg's default threads, and
every frame) every member's audio and video, and leaves after SECONDS. Its C heap is not
trimmed after joining, as the appliance's is. MIC is what the sim
mic plays (``tone:300`` unless given); once joined it prints the mic clock's origin.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from drivers.audio.sim import SimMic, SimSpeaker
from drivers.camera.sim import SimCamera
from services.room import decoders
from services.room import session as room_session
from services.room.context import RoomSettings
from services.room.session import JanusRoomSession
from services.room.tracks import CameraTrack


async def main(url: str, room: int, seconds: float, width: int, height: int, fps: int,
               mic: str = "tone:300") -> None:
    decoders.DECODER_THREADS = 0  # aiortc's own choice, not the appliance's
    room_session.TRIM_AFTER_JOIN_S = None
    with tempfile.TemporaryDirectory(prefix="aiortc-client-") as tmp:
        received = 0

        def on_video(member: str, frame: Any) -> None:
            nonlocal received
            received += 1

        session = JanusRoomSession(
            RoomSettings(url=url, room=room, display="aiortc"),
            mic=SimMic(mic), speaker=SimSpeaker(Path(tmp) / "speaker.wav"),
            video_track_factory=lambda: CameraTrack(SimCamera(width, height, fps)),
            on_remote_video=on_video)
        await asyncio.wait_for(session.join(), 30)
        print("joined", flush=True)
        for _ in range(200):
            start = getattr(session.mic, "_start", None)
            if start is not None:
                base = getattr(session.mic, "_base", 0)
                print(f"sim mic: {mic} (frame {base} at {start:.6f} monotonic)", flush=True)
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(seconds)
        print(f"video frames received: {received}", flush=True)
        await session.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    dims = [int(x) for x in a[3:6]] if len(a) >= 6 else [640, 480, 30]
    asyncio.run(main(a[0], int(a[1]), float(a[2]), *dims, *a[6:7]))
