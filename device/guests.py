"""Guests in the box's room: the page's room signalling proxy and its guest links,
built from the config (``room.*``, ``web.max_guests``, ``web.guest_messages_per_second``).

Only a video room (``room.backend = "videoroom"``) is open to guests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from device.host import Host
    from services.guest.proxy import GuestSettings

GUESTS = "guests"


def guest_settings(app: Host) -> GuestSettings:
    from device.settings import server_url
    from services.guest.proxy import GuestSettings

    config = app.config
    rate = config.web.guest_messages_per_second
    return GuestSettings(janus_url=server_url(config), room=config.room.room,
                         pin=config.room.pin, api_secret=config.room.api_secret,
                         token=config.room.token, max_guests=config.web.max_guests,
                         messages_per_second=float(rate), burst=3 * rate)


def compose_guests(app: Host) -> None:
    from services.guest.links import GuestLinks
    from services.guest.proxy import GuestGate

    gate = GuestGate(lambda: guest_settings(app), GuestLinks(app.state_dir))
    app.extras[GUESTS] = gate  # the page's room proxy and guest links
    app.status_providers.add(GUESTS, gate.status)
