"""The error hierarchy shared by every layer of the appliance.

Every error the appliance raises on purpose derives from :class:`EdgeroomError`; the
hardware ones also derive from the builtin that fits, so callers can catch either.
"""

from __future__ import annotations


class EdgeroomError(Exception):
    """Root of every error raised by the appliance on purpose."""


class DeviceError(EdgeroomError, OSError):
    """A hardware device could not be used."""


class DeviceNotFound(DeviceError, FileNotFoundError):
    """The configured device does not exist; the message lists what does."""


class DeviceBusy(DeviceError):
    """The device exists but another process holds it."""


class DeviceLost(DeviceError):
    """The device disappeared while in use (unplugged)."""


class PinConflict(EdgeroomError, ValueError):
    """The same GPIO pin is configured for two roles."""
