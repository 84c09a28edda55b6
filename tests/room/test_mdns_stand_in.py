"""aioice's mDNS module stands in lazily: dnspython loads only when mDNS is used."""

from __future__ import annotations

import subprocess
import sys

import aioice.ice
import pytest

from services.room import mdns
from tests.harness.appliance import REPO

NAMES = ["1f0e2c3d-aaaa-4bbb-8ccc-123456789abc.local", "box.local", "a.local",
         "x" * 63 + ".local", "x" * 64 + ".local", "box.local.", "box.lan", "192.168.1.2",
         "under_score.local", ".local", "BOX-1.local", "box.LOCAL"]


def test_aioice_uses_it() -> None:
    assert aioice.ice.mdns is mdns


@pytest.mark.parametrize("name", NAMES)
def test_the_name_check_is_aioices(name: str) -> None:
    assert mdns.is_mdns_hostname(name) == mdns.aioice_mdns().is_mdns_hostname(name)


def test_a_new_name_is_one() -> None:
    name = mdns.create_mdns_hostname()
    assert mdns.is_mdns_hostname(name) and name != mdns.create_mdns_hostname()


PROBE = """
import sys
import services, aiortc
pc = aiortc.RTCPeerConnection()
print("dns" in sys.modules)
from aioice import mdns
port = mdns.MDNS_PORT
print("dns" in sys.modules, port, sys.modules["aioice._own_mdns"].MDnsProtocol.__module__)
"""


def test_dnspython_loads_only_when_mdns_is_used() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out == ["False", "True", "5353", "aioice._own_mdns"], out
