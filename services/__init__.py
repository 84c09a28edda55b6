"""What the appliance does with its hardware: room client, media, web page, serial control."""

from services.room.stand_ins import install as _install_stand_ins

_install_stand_ins()  # before anything imports aiortc (see services.room.stand_ins)
