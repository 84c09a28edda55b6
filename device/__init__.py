"""The appliance itself: CLI, config, state machine, action dispatch and supervision."""

__version__ = "0.1.0"
