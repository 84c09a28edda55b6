"""The room on a screen: members' tiles in a layout, composed cheaply and shown on a
:class:`drivers.display.Display` (:class:`services.display.screen.RoomScreen`)."""
