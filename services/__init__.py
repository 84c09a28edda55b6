"""What the appliance does with its hardware: room client, media, web page, serial control."""

from services.room.dtls import install as _install_dtls

_install_dtls()  # before anything imports aiortc (see services.room.dtls)
