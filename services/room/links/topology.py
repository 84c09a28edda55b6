"""One room over several servers: the links a star or a full mesh needs.

Each link forwards only its servers' own publishers, so in a **mesh** every server gets
every other server's members straight from their server: N x (N - 1) / 2 links, and each
server sends each of its publishers N - 1 times. In a **star** every spoke is linked to
the hub only: the hub's room has everyone, but a spoke's room has the hub's own members
and its own, not the other spokes' (Janus 1.1 does not forward a remote publisher on).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Literal

from services.room.links.settings import Direction, LinkSettings, RoomEnd

Topology = Literal["mesh", "star"]
MAX_MESH = 4


def links_for(servers: list[RoomEnd], topology: Topology = "mesh",
              direction: Direction = "both", name: str = "room") -> list[LinkSettings]:
    """The links that join ``servers``' rooms (the first is the hub of a star)."""
    if len(servers) < 2:
        raise ValueError("a room over several servers needs at least two")
    if len({(s.url, s.room) for s in servers}) != len(servers):
        raise ValueError("the same room is listed twice")
    if topology == "mesh":
        if len(servers) > MAX_MESH:
            raise ValueError(f"a full mesh is for at most {MAX_MESH} servers "
                             f"({len(servers)} given): use a star")
        pairs = list(itertools.combinations(range(len(servers)), 2))
    elif topology == "star":
        pairs = [(0, i) for i in range(1, len(servers))]
    else:
        raise ValueError(f"topology must be mesh or star, not {topology!r}")
    return [LinkSettings(f"{name}-{i + 1}-{j + 1}", servers[i], servers[j], direction)
            for i, j in pairs]


def streams_per_link(publishers: list[int], topology: Topology) -> dict[str, int]:
    """How many publisher copies each server sends, for ``publishers[i]`` local
    publishers on server i (what the bandwidth of a topology is made of)."""
    n = len(publishers)
    if topology == "mesh":
        return {f"server-{i + 1}": p * (n - 1) for i, p in enumerate(publishers)}
    hub = publishers[0] * (n - 1)
    return {"server-1": hub, **{f"server-{i + 1}": p for i, p in enumerate(publishers)
                                if i > 0}}


def relabel(end: RoomEnd, label: str) -> RoomEnd:
    return replace(end, label=label)
