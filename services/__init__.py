"""What the appliance does with its hardware: room client, media, web page, serial control."""
