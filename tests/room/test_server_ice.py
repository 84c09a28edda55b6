"""Janus's ICE as sites set it: ICE-lite on a public address (it answers checks and
sends none; the box, the full agent, makes the pairs), ICE over TCP beside UDP, and
full trickle (Janus may answer before it has gathered, and sends its candidates as
trickle messages too, which the box does not read). The box must get its media
through every way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.room.janus.jcfg import RoomSpec
from tests.harness.fixtures import ROOM_SECRET
from tests.harness.janus import JanusServer
from tests.harness.netns import Network
from tests.room.conftest import two_boxes_meet

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]

ROOM = 1001


@pytest.fixture(scope="module", params=["ice-lite", "ice-lite+tcp", "full-trickle"])
def ice_janus(request: Any, network: Network, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[JanusServer]:
    host = network.add_host("jlite")
    lite = request.param.startswith("ice-lite")
    server = JanusServer(host, tmp_path_factory.mktemp("janus-lite"),
                         (RoomSpec(ROOM, secret=ROOM_SECRET),), ice_lite=lite,
                         ice_tcp=request.param.endswith("tcp"),
                         full_trickle=not lite)
    server.start()
    try:
        mode = {"ice-lite": "Lite mode", "ice-lite+tcp": "Lite mode, ICE-TCP",
                "full-trickle": "full-trickle"}[request.param]
        assert mode in server.log_path.read_text(errors="replace")  # as Janus says it
        yield server
    finally:
        server.stop()


def test_boxes_meet_whatever_the_server_s_ice(make_peer: Any,
                                               ice_janus: JanusServer) -> None:
    a, b = two_boxes_meet(make_peer, ROOM, ice_janus.url)
    assert not a.names("reconnecting") and not b.names("reconnecting")
