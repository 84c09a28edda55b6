"""The room a benchmark runs in: private network namespaces and a real Janus.

Built from the test harness (:mod:`tests.harness`), so benchmarks move media exactly as
the tests do: every host in its own namespace on a bridge that exists only inside these
namespaces, nothing sent anywhere else.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from services.room.context import RoomSettings
from services.room.janus.jcfg import RoomSpec
from services.room.opus_send import OpusSendSettings
from tests.harness.appliance import ApplianceProcess
from tests.harness.impair import Impairment
from tests.harness.impaired import ImpairedLink
from tests.harness.janus import JanusServer
from tests.harness.netns import Host, Network
from tests.harness.peers import RoomPeer

log = logging.getLogger(__name__)

FIRST_ROOM = 2001
#: Rooms whose VideoRoom allows only VP8 (Janus's default), for the codec benchmark.
FIRST_VP8_ROOM = 2101
VP8_ROOMS = 5
ROOMS = (*(RoomSpec(n, secret="benchsecret") for n in range(FIRST_ROOM, FIRST_ROOM + 40)),
         *(RoomSpec(n, secret="benchsecret", videocodec="vp8")
           for n in range(FIRST_VP8_ROOM, FIRST_VP8_ROOM + VP8_ROOMS)))


class BenchRoom:
    """A network, a Janus, and the peers, appliances and rooms a benchmark asks for.

    Use as a context manager; everything it made is torn down on exit.
    """

    def __init__(self, tag: str = "eb") -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="edgeroom-bench-"))
        self.network = Network(tag)
        self._rooms = itertools.count(FIRST_ROOM)
        self._vp8_rooms = itertools.count(FIRST_VP8_ROOM)
        self._names = itertools.count(1)
        self.peers: list[RoomPeer] = []
        self.appliances: list[ApplianceProcess] = []
        try:
            self.janus_host = self.network.add_host("janus")
            self.janus = JanusServer(self.janus_host, self.workdir, ROOMS)
            self.janus.start()
        except BaseException:
            self.network.close()
            raise

    def __enter__(self) -> BenchRoom:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_room(self) -> int:
        """A fresh room whose video codecs are "h264,vp8" (publishers send H.264)."""
        n = next(self._rooms)
        if n >= FIRST_ROOM + 40:
            raise RuntimeError("out of benchmark rooms")
        return n

    def new_vp8_room(self) -> int:
        """A fresh room that allows only VP8 video."""
        n = next(self._vp8_rooms)
        if n >= FIRST_VP8_ROOM + VP8_ROOMS:
            raise RuntimeError("out of VP8 benchmark rooms")
        return n

    def host(self, name: str, up: Impairment | None = None,
             down: Impairment | None = None) -> Host:
        """A host on the bridge; behind the impairment lab when ``up`` or ``down`` is given
        (:meth:`link` to change them at run time)."""
        name = f"{name}{next(self._names)}"
        if up is None and down is None:
            return self.network.add_host(name)
        return self.network.add_impaired_host(name, up=up, down=down)

    def link(self, host: Host) -> ImpairedLink:
        """The impaired link of a host made with ``up``/``down``."""
        return self.network.links[host.name]

    def peer(self, name: str, room: int, *, tone: str | None = "tone:440",
             camera: bool = False, collect_video: bool = False,
             up: Impairment | None = None, down: Impairment | None = None,
             mic_drift_ppm: float = 0.0, speaker_drift_ppm: float = 0.0,
             **settings: Any) -> RoomPeer:
        """An in-process room session in its own namespace (not joined yet); its sim
        mic's and speaker's clocks run fast or slow by the given ppm. With
        ``EDGEROOM_BENCH_OPUS_FEC=0`` in the environment its mic is sent without Opus
        in-band FEC (``audio.opus_fec``, on by default), unless ``opus=`` says otherwise."""
        if os.environ.get("EDGEROOM_BENCH_OPUS_FEC") == "0":
            settings.setdefault("opus", OpusSendSettings(fec=False))
        host = self.host(name, up, down)
        workdir = self.workdir / host.name
        workdir.mkdir(parents=True, exist_ok=True)
        rs = RoomSettings(url=self.janus.url, room=room, display=name, **settings)
        peer = RoomPeer(host, workdir, rs, tone=tone, camera=camera, collect_video=collect_video,
                        mic_drift_ppm=mic_drift_ppm, speaker_drift_ppm=speaker_drift_ppm)
        self.peers.append(peer)
        return peer

    def drop_peer(self, peer: RoomPeer) -> None:
        if peer in self.peers:
            self.peers.remove(peer)
        peer.close()

    def appliance(self, name: str, config: dict[str, dict[str, Any]],
                  start: bool = True, up: Impairment | None = None,
                  down: Impairment | None = None) -> ApplianceProcess:
        """An ``edgeroom run --sim`` process in its own namespace."""
        host = self.host(name, up, down)
        config = {**config, "room": {"server": self.janus.url, **config.get("room", {})}}
        config.setdefault("web", {}).setdefault("listen", "127.0.0.1:8080")
        app = ApplianceProcess(host, self.workdir / host.name, config)
        self.appliances.append(app)
        if start:
            app.start()
        return app

    def close(self) -> None:
        for app in self.appliances:
            try:
                app.stop()
            except Exception as exc:
                log.warning("stopping %r: %s", app, exc)
        self.appliances.clear()
        for peer in reversed(self.peers):
            try:
                peer.close()
            except Exception as exc:
                log.warning("closing %r: %s", peer, exc)
        self.peers.clear()
        try:
            self.janus.stop()
        finally:
            self.network.close()
            shutil.rmtree(self.workdir, ignore_errors=True)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, linear interpolation), None for no values."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def p50(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def since(values: list[float], t: float) -> list[float]:
    """The values at or after ``t`` (for waiting on a growing list of times)."""
    return [x for x in values if x >= t]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
