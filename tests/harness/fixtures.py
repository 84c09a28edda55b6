"""Pytest fixtures: a private network, a real Janus in it, and peers/appliances.

Use from a conftest with ``pytest_plugins = ["tests.harness.fixtures"]``. The network
and Janus are module-scoped (one Janus per test module); peers and appliances are
function-scoped and always torn down, also when a test fails.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.room.context import RoomSettings
from services.room.janus.jcfg import RoomSpec
from services.room.speaker_use import HOLD_S
from tests.harness.appliance import ApplianceProcess
from tests.harness.impair import Impairment
from tests.harness.janus import JanusServer
from tests.harness.netns import Host, Network
from tests.harness.peers import RoomPeer

#: Rooms every harness Janus has: 1001-1019 open (secret "modsecret", video codecs
#: "h264,vp8"), 1100 with PIN 4321, and five open rooms for each of :data:`ROOM_CODECS`
#: (VideoRoom ``videocodec``), from 1200 on, and for each of :data:`ROOM_AUDIO_CODECS`
#: (``audiocodec``), from 1300 on; and from 1400 on, rooms as Janus's own sample
#: configuration makes its demo room 1234: 6 publishers at 128 kbit/s, a keyframe asked
#: for every 10 s, a voice room mixing at 16 kHz, and Janus's defaults otherwise: VP8,
#: Opus, no ``talking`` events, no news of listeners joining.
ROOM_SECRET = "modsecret"
ROOM_PIN = "4321"
PIN_ROOM = 1100
ROOM_CODECS = ("vp8", "h264", "vp8,h264", "h264,vp8", "vp9", "av1")
CODEC_ROOMS_EACH = 5
#: Rooms that prefer G.711 or G.722 to Opus: a member that offers them (Chromium, plain
#: aiortc) publishes them there; the box offers only Opus.
ROOM_AUDIO_CODECS = ("pcmu,opus", "pcma,opus", "g722,opus", "pcmu", "l16-48")
#: Rooms as Janus's sample configuration makes its demo room 1234 (see above).
STOCK_ROOMS = range(1400, 1410)
#: Rooms where only members subscribe (``require_pvtid``: a publisher handle's
#: private_id goes with each subscription).
PVTID_ROOMS = range(1410, 1415)
#: Rooms whose streams carry no audio level (VideoRoom ``audiolevel_ext = false``) and
#: that tell nobody who is talking.
LEVELLESS_ROOMS = range(1415, 1420)
#: H.264-only rooms by the one profile-level-id they take (``h264_profile``; None:
#: Janus's default, which takes any): the harness's other rooms take 42e01f.
H264_PROFILE_ROOMS: dict[str | None, int] = {None: 1420, "42001f": 1421, "4d001f": 1422,
                                             "640c1f": 1423}


def codec_rooms(videocodec: str) -> range:
    """The harness rooms whose VideoRoom allows exactly ``videocodec``."""
    first = 1200 + 10 * ROOM_CODECS.index(videocodec)
    return range(first, first + CODEC_ROOMS_EACH)


def audio_codec_rooms(audiocodec: str) -> range:
    """The harness rooms whose VideoRoom allows exactly ``audiocodec``."""
    first = 1300 + 10 * ROOM_AUDIO_CODECS.index(audiocodec)
    return range(first, first + CODEC_ROOMS_EACH)


HARNESS_ROOMS = (*(RoomSpec(n, secret=ROOM_SECRET, allow_rtp_participants=True)
                   for n in range(1001, 1020)),
                 RoomSpec(PIN_ROOM, pin=ROOM_PIN, secret=ROOM_SECRET),
                 *(RoomSpec(n, secret=ROOM_SECRET, videocodec=codec)
                   for codec in ROOM_CODECS for n in codec_rooms(codec)),
                 *(RoomSpec(n, secret=ROOM_SECRET, audiocodec=codec)
                   for codec in ROOM_AUDIO_CODECS for n in audio_codec_rooms(codec)),
                 *(RoomSpec(n, secret=ROOM_SECRET, publishers=6, bitrate=128_000,
                            fir_freq=10, videocodec="vp8", audiolevel_event=False,
                            notify_joining=False, sampling_rate=16000)
                   for n in STOCK_ROOMS),
                 *(RoomSpec(n, secret=ROOM_SECRET, require_pvtid=True) for n in PVTID_ROOMS),
                 *(RoomSpec(n, secret=ROOM_SECRET, audiolevel_ext=False,
                            audiolevel_event=False) for n in LEVELLESS_ROOMS),
                 *(RoomSpec(n, secret=ROOM_SECRET, videocodec="h264", h264_profile=profile)
                   for profile, n in H264_PROFILE_ROOMS.items()))

#: Free rooms of each running harness Janus (one Janus per test module), per room kind.
_free_rooms: dict[int, Iterator[int]] = {}
_free_codec_rooms: dict[tuple[int, str], Iterator[int]] = {}


def _can_run() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None or not Path("/usr/bin/janus").exists():
        return "needs iproute2 and /usr/bin/janus"
    return None


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    reason = _can_run()
    if reason:
        pytest.fail(reason)  # a missing prerequisite is a failure, not a skip
    net = Network()
    try:
        yield net
    finally:
        net.close()


@pytest.fixture(scope="module")
def janus(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    host = network.add_host("janus")
    server = JanusServer(host, tmp_path_factory.mktemp("janus"), HARNESS_ROOMS)
    server.start()
    _free_rooms[id(server)] = iter(range(1001, 1020))
    try:
        yield server
    finally:
        _free_rooms.pop(id(server), None)
        for key in [k for k in _free_codec_rooms if k[0] == id(server)]:
            del _free_codec_rooms[key]
        server.stop()


@pytest.fixture
def room_number(janus: JanusServer) -> int:
    """A room no other test of this module (this Janus) uses."""
    n = next(_free_rooms[id(janus)], None)
    if n is None:
        raise RuntimeError("out of harness rooms: add rooms to HARNESS_ROOMS")
    return n


RoomWithCodec = Callable[[str], int]


@pytest.fixture
def room_with_codec(janus: JanusServer) -> RoomWithCodec:
    """``room_with_codec("vp8")`` -> a room of this Janus whose video codecs are exactly
    that list (one of :data:`ROOM_CODECS`) and that no other test of the module uses."""
    def take(videocodec: str) -> int:
        return _take_room(janus, videocodec, codec_rooms(videocodec))

    return take


def _take_room(janus: JanusServer, kind: str, rooms: range) -> int:
    """The next room of ``kind`` (of ``rooms``) that no other test of the module used."""
    n = next(_free_codec_rooms.setdefault((id(janus), kind), iter(rooms)), None)
    if n is None:
        raise RuntimeError(f"out of {kind!r} harness rooms: add rooms to HARNESS_ROOMS")
    return n


@pytest.fixture
def stock_room(janus: JanusServer) -> int:
    """A room configured as Janus's sample demo room (see :data:`STOCK_ROOMS`), not used
    by another test of the module."""
    return _take_room(janus, "stock", STOCK_ROOMS)


@pytest.fixture
def pvtid_room(janus: JanusServer) -> int:
    """A room where subscribing needs a member's private_id (:data:`PVTID_ROOMS`), not
    used by another test of the module."""
    return _take_room(janus, "pvtid", PVTID_ROOMS)


@pytest.fixture
def levelless_room(janus: JanusServer) -> int:
    """A room whose streams carry no audio level (:data:`LEVELLESS_ROOMS`), not used by
    another test of the module."""
    return _take_room(janus, "levelless", LEVELLESS_ROOMS)


@pytest.fixture
def room_with_audio_codec(janus: JanusServer) -> RoomWithCodec:
    """``room_with_audio_codec("pcmu,opus")`` -> a room of this Janus whose audio codecs
    are exactly that list (one of :data:`ROOM_AUDIO_CODECS`), not used by another test of
    the module."""
    def take(audiocodec: str) -> int:
        return _take_room(janus, "audio:" + audiocodec, audio_codec_rooms(audiocodec))

    return take


PeerFactory = Callable[..., RoomPeer]


def _host(network: Network, name: str, up: Impairment | None,
          down: Impairment | None) -> Host:
    """A plain host, or one behind the impairment lab when ``up`` or ``down`` is given."""
    if up is None and down is None:
        return network.add_host(name)
    return network.add_impaired_host(name, up=up, down=down)


@pytest.fixture
def make_peer(network: Network, janus: JanusServer,
              tmp_path: Path) -> Iterator[PeerFactory]:
    """``make_peer("a", room=1001, tone="tone:440", **settings)`` -> a RoomPeer (not joined).

    ``up=``/``down=`` (:class:`~tests.harness.impair.Impairment`) put the peer behind the
    impairment lab; its link is ``network.links[peer.host.name]``.
    """
    peers: list[RoomPeer] = []
    counter = itertools.count(1)

    def make(name: str, room: int, tone: str | None = "tone:440", camera: bool = False,
             collect_video: bool = False, url: str | None = None,
             up: Impairment | None = None, down: Impairment | None = None,
             speaker_hold_s: float = HOLD_S, **settings: Any) -> RoomPeer:
        host = _host(network, f"{name}{next(counter)}{len(network.hosts)}", up, down)
        rs = RoomSettings(url=url or janus.url, room=room, display=name, **settings)
        peer = RoomPeer(host, tmp_path, rs, tone=tone, camera=camera,
                        collect_video=collect_video, speaker_hold_s=speaker_hold_s)
        peers.append(peer)
        return peer

    try:
        yield make
    finally:
        for peer in reversed(peers):
            peer.close()


ApplianceFactory = Callable[..., ApplianceProcess]


@pytest.fixture
def make_appliance(network: Network, janus: JanusServer,
                   tmp_path: Path) -> Iterator[ApplianceFactory]:
    """``make_appliance("a", {"room": {...}, "sim": {...}})`` -> a started appliance
    (``up=``/``down=`` as for ``make_peer``)."""
    apps: list[ApplianceProcess] = []

    def make(name: str, config: dict[str, dict[str, Any]], start: bool = True,
             up: Impairment | None = None,
             down: Impairment | None = None) -> ApplianceProcess:
        host = _host(network, f"{name}{len(network.hosts)}", up, down)
        app = ApplianceProcess(host, tmp_path / name, config)
        apps.append(app)
        if start:
            app.start()
        return app

    try:
        yield make
    finally:
        for app in apps:
            app.stop()
