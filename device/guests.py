"""Guests in the box's room: the page's room signalling proxy and its guest links,
built from the config (``room.*``, ``web.max_guests``, ``web.guest_messages_per_second``).

Only a video room (``room.backend = "videoroom"``) is open to guests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from device.host import Host

GUESTS = "guests"


def compose_guests(app: Host) -> None:
    from device.settings import guests
    from services.guest.links import GuestLinks
    from services.guest.proxy import GuestGate

    # the room as the server takes it, once the box is in it (1234 or "1234")
    gate = GuestGate(lambda: guests(app.config, getattr(app.room, "room_number", None)),
                     GuestLinks(app.state_dir))
    app.extras[GUESTS] = gate  # the page's room proxy and guest links
    app.status_providers.add(GUESTS, gate.status)
