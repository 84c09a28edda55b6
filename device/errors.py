"""Errors of the appliance layer; every one derives from :class:`EdgeroomError`.

The config errors are defined in :mod:`drivers.errors` (every layer reports them) and
are importable from here too.
"""

from __future__ import annotations

from drivers.errors import ConfigError, ConfigIssue, EdgeroomError

__all__ = ["ConfigError", "ConfigIssue", "EdgeroomError"]
