"""Guest tests with a real Janus in private network namespaces."""

from __future__ import annotations

from tests.harness.fixtures import (  # noqa: F401  (fixtures)
    janus,
    make_appliance,
    make_peer,
    network,
    pvtid_room,
    room_number,
)
