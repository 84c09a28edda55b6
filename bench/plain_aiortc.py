"""A plain aiortc room member, the reference the quota and memory rows compare with.

Nothing of the appliance's room code runs in it: it speaks Janus's WebSocket API itself
(create, attach, ``joinandconfigure``, one subscriber handle per publisher, keepalives),
and its peer connections are aiortc's own ``RTCPeerConnection`` as aiortc ships it:
aiortc's Opus and video encoders, RTP and SRTP path, jitter buffers, decoders (FFmpeg's
default threads) and ICE consent checks. Only the media sources are the sim mic and sim
camera (:mod:`drivers.audio.sim`, :mod:`drivers.camera.sim`), wrapped in the two-line
``MediaStreamTrack`` an aiortc application writes, so both publishers send the same
tone and the same frames. Every received track is read to the end, as aiortc's
``MediaBlackhole`` does: aiortc decodes every audio and video frame, and nothing plays.

``python -m bench.plain_aiortc URL ROOM SECONDS [WIDTH HEIGHT FPS [MIC]]`` (run it
inside the benchmark's namespace): it joins, publishes, receives every member, and
leaves after SECONDS. It prints ``joined``, the mic clock's origin in the sim mic's own
words (``sim mic: ... (frame N at T monotonic)``), and ``video frames received: N``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from fractions import Fraction
from typing import Any

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from drivers.audio.sim import SimMic
from drivers.camera.sim import SimCamera

KEEPALIVE_S = 25.0
AUDIO_TIME_BASE = Fraction(1, 48000)


class MicTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, mic: SimMic) -> None:
        super().__init__()
        self.mic = mic

    async def recv(self) -> av.AudioFrame:
        pcm = await self.mic.read()
        frame = av.AudioFrame(format="s16", layout="mono", samples=pcm.sample_count)
        frame.planes[0].update(pcm.samples)
        frame.sample_rate = pcm.sample_rate
        frame.pts = pcm.index * pcm.sample_count
        frame.time_base = AUDIO_TIME_BASE
        return frame


class CameraTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, camera: SimCamera) -> None:
        super().__init__()
        self.camera = camera

    async def recv(self) -> av.VideoFrame:
        return (await self.camera.read()).frame


def _video_codec(sdp: str) -> str:
    """The first codec of the video section of Janus's answer (the one it chose)."""
    video = sdp.split("m=video", 1)[-1]
    for line in video.splitlines():
        if line.startswith("a=rtpmap:"):
            return line.split(" ", 1)[1].split("/")[0]
    return "none"


class Janus:
    """Janus's WebSocket API: requests matched to their answers by transaction, and each
    handle's other events in its own queue."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.session = 0
        self._tx = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            if data.get("janus") == "ack":
                continue
            waiter = self._waiting.pop(str(data.get("transaction")), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(data)
            elif data.get("sender") in self.events:
                self.events[data["sender"]].put_nowait(data)

    async def request(self, janus: str, handle: int | None = None, **fields: Any) -> dict[str, Any]:
        tx = f"t{next(self._tx)}"
        body: dict[str, Any] = {"janus": janus, "transaction": tx, **fields}
        if self.session:
            body["session_id"] = self.session
        if handle is not None:
            body["handle_id"] = handle
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[tx] = waiter
        await self.ws.send_json(body)
        answer = await asyncio.wait_for(waiter, 30)
        if answer.get("janus") == "error":
            raise RuntimeError(f"janus: {answer['error']}")
        return answer

    async def create(self) -> None:
        self.session = (await self.request("create"))["data"]["id"]

    async def attach(self) -> int:
        handle: int = (await self.request("attach", plugin="janus.plugin.videoroom"))["data"]["id"]
        self.events[handle] = asyncio.Queue()
        return handle

    async def message(self, handle: int, body: dict[str, Any],
                      pc: RTCPeerConnection | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"body": body}
        if pc is not None:
            d = pc.localDescription
            fields["jsep"] = {"type": d.type, "sdp": d.sdp}
        answer = await self.request("message", handle, **fields)
        plugin = answer.get("plugindata", {}).get("data", {})
        if "error" in plugin:
            raise RuntimeError(f"videoroom: {plugin['error']}")
        return answer

    async def keepalive(self) -> None:
        """Janus answers a keepalive with an ack alone, so none is awaited."""
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            await self.ws.send_json({"janus": "keepalive", "session_id": self.session,
                                     "transaction": f"t{next(self._tx)}"})


class Member:
    def __init__(self, janus: Janus, room: int) -> None:
        self.janus = janus
        self.room = room
        self.pcs: list[RTCPeerConnection] = []
        self.subscribed: set[int] = set()
        self.video_frames = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def publish(self, mic: SimMic, camera: SimCamera) -> None:
        handle = await self.janus.attach()
        pc = self._new_pc("publisher")
        pc.addTrack(MicTrack(mic))
        pc.addTrack(CameraTrack(camera))
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.janus.message(handle, {
            "request": "joinandconfigure", "room": self.room, "ptype": "publisher",
            "display": "plain-aiortc", "audio": True, "video": True}, pc)
        await pc.setRemoteDescription(RTCSessionDescription(**answer["jsep"]))
        print(f"video codec: {_video_codec(answer['jsep']['sdp'])}", flush=True)
        self._subscribe_all(answer["plugindata"]["data"])
        self._spawn(self._watch(handle))

    def _new_pc(self, name: str) -> RTCPeerConnection:
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        pc.on("connectionstatechange",
              lambda: print(f"peer connection: {name} {pc.connectionState}", flush=True))
        return pc

    async def _watch(self, handle: int) -> None:
        """Members who publish later appear in the publisher handle's events."""
        while True:
            event = await self.janus.events[handle].get()
            self._subscribe_all(event.get("plugindata", {}).get("data", {}))

    def _subscribe_all(self, data: dict[str, Any]) -> None:
        for publisher in data.get("publishers", []):
            if publisher["id"] not in self.subscribed:
                self.subscribed.add(publisher["id"])
                self._spawn(self._subscribe(publisher["id"]))

    async def _subscribe(self, feed: int) -> None:
        handle = await self.janus.attach()
        offer = await self.janus.message(handle, {
            "request": "join", "room": self.room, "ptype": "subscriber",
            "streams": [{"feed": feed}]})
        pc = self._new_pc(f"subscriber to {feed}")
        pc.on("track", lambda track: self._spawn(self._drain(track)))
        await pc.setRemoteDescription(RTCSessionDescription(**offer["jsep"]))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.janus.message(handle, {"request": "start"}, pc)

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                if track.kind == "video":
                    self.video_frames += 1

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for pc in self.pcs:
            await pc.close()


async def main(url: str, room: int, seconds: float, width: int, height: int, fps: int,
               source: str = "tone:300") -> None:
    mic, camera = SimMic(source), SimCamera(width, height, fps)
    async with aiohttp.ClientSession() as http, http.ws_connect(
            url, protocols=("janus-protocol",)) as ws:
        janus = Janus(ws)
        await janus.create()
        keepalive = asyncio.ensure_future(janus.keepalive())
        await mic.start()
        await camera.start()
        member = Member(janus, room)
        await asyncio.wait_for(member.publish(mic, camera), 30)
        print("joined", flush=True)
        print(f"sim mic: {source} (frame {mic._base} at {mic._start:.6f} monotonic)",
              flush=True)
        await asyncio.sleep(seconds)
        print(f"video frames received: {member.video_frames}", flush=True)
        keepalive.cancel()
        await member.close()
        await camera.stop()
        await mic.stop()


def launch(host: Any, url: str, room: int, seconds: float, *more: str) -> Any:
    """This client as a process in ``host``'s namespace (its output and errors on one
    pipe); the
    harness is imported here, not in the client, whose memory the bench measures."""
    import subprocess

    from tests.harness.appliance import REPO
    from tests.harness.lifetime import child_setup

    return subprocess.Popen(
        [*host.exec_prefix(), sys.executable, "-m", "bench.plain_aiortc", url, str(room),
         str(seconds), *more], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, preexec_fn=child_setup())


def wait_joined(client: Any) -> str:
    """Read a :func:`launch`-ed client's output up to its ``joined`` line (what it said
    so far); raises if it ends before joining."""
    said = ""
    while "joined" not in said:
        line = client.stdout.readline()
        if not line:
            raise RuntimeError(f"the plain aiortc member did not join: {said!r}")
        said += line
    return said


if __name__ == "__main__":
    a = sys.argv[1:]
    dims = [int(x) for x in a[3:6]] if len(a) >= 6 else [640, 480, 30]
    asyncio.run(main(a[0], int(a[1]), float(a[2]), *dims, *a[6:7]))
