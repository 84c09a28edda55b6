"""The error hierarchy shared by every layer of the appliance.

Every error the appliance raises on purpose derives from :class:`EdgeroomError`; the
hardware ones also derive from the builtin that fits, so callers can catch either.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: the dotted key, what is wrong, and the line if known."""

    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.key}: {self.message}"


class ConfigError(EdgeroomError, ValueError):
    """The config is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue], source: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(str(i) for i in self.issues))

    def lines(self) -> list[str]:
        prefix = f"{self.source}:" if self.source else ""
        return [f"{prefix}{i.line}: {i.key}: {i.message}" if i.line and prefix
                else f"{prefix}{' ' if prefix else ''}{i}" for i in self.issues]
