"""aioice's mDNS module, with dnspython loaded only when an mDNS name is first resolved.

aioice resolves an ICE candidate whose host is an mDNS name (``<uuid>.local``, as
browsers hide their addresses) with ``aioice.mdns``, which imports dnspython: 6.3 MB of
the room's memory. The box talks to its room server, whose candidates are addresses, so
this module stands in for it (:mod:`services.room.stand_ins`): the name check is here,
and aioice's own module (with dnspython) is loaded the first time a name is resolved or
anything else of it is used.
"""

from __future__ import annotations

import re
import uuid
from types import ModuleType
from typing import Any

MDNS_HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9-]{1,63}\.local$")


class MDnsProtocol:
    """The name aioice's annotations use (evaluated when aioice is imported); the
    protocol :func:`create_mdns_protocol` returns is aioice's own class."""


def is_mdns_hostname(name: str) -> bool:
    return MDNS_HOSTNAME_RE.match(name) is not None


def create_mdns_hostname() -> str:
    return f"{uuid.uuid4()}.local"


async def create_mdns_protocol() -> Any:
    """aioice's mDNS protocol (its module, and dnspython, loaded now)."""
    return await aioice_mdns().create_mdns_protocol()


def aioice_mdns() -> ModuleType:
    """aioice's own ``aioice/mdns.py``, loaded once under another name."""
    from services.room.stand_ins import original

    return original("aioice.mdns")


def __getattr__(name: str) -> Any:  # the rest, from aioice's own
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(aioice_mdns(), name)
