"""Errors of the appliance layer; every one derives from :class:`EdgeroomError`."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import EdgeroomError

__all__ = ["ConfigError", "ConfigIssue", "EdgeroomError"]


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
