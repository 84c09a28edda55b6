"""The appliance configuration: one TOML file, typed, validated at load, saved atomically.

Every key is optional. Each section is a frozen dataclass (:mod:`device.config_sections`)
whose fields carry their documentation and constraints in ``metadata`` (see
:func:`~device.config_sections.setting`); validation (:mod:`device.config_check`) walks
those fields, so adding a key means adding one field there and nothing else (a new
section is one more dataclass there and one more field of :class:`Config` here). Saves
(:mod:`device.config_store`) edit the file in place.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device import config_check
from device.config_check import choices_of, type_name
from device.config_links import LinkConfig, LinksConfig
from device.config_sections import (
    AudioConfig,
    DisplayConfig,
    GpioConfig,
    RecordConfig,
    RoomConfig,
    SerialConfig,
    SimConfig,
    StreamConfig,
    VideoConfig,
    WebConfig,
    setting,
)
from device.errors import ConfigError, ConfigIssue
from drivers.common.redact import REDACTED

DEFAULT_CONFIG_PATH = Path("/etc/edgeroom/edgeroom.toml")
DEFAULT_STATE_DIR = Path("/var/lib/edgeroom")


@dataclass(frozen=True)
class Config:
    room: RoomConfig = field(default_factory=RoomConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    serial: SerialConfig = field(default_factory=SerialConfig)
    web: WebConfig = field(default_factory=WebConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    links: LinksConfig = field(default_factory=LinksConfig)
    #: The ``[[link]]`` tables (a list: see :data:`ARRAYS`).
    link: tuple[LinkConfig, ...] = ()

    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for sec in dataclasses.fields(self):
            if sec.name in ARRAYS:
                continue
            section = getattr(self, sec.name)
            values: dict[str, Any] = {}
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                if redact and f.metadata.get("secret") and value is not None:
                    value = REDACTED
                values[f.name] = dict(value) if isinstance(value, dict) else value
            out[sec.name] = values
        for name in ARRAYS:  # last: TOML puts [[link]] tables after the plain sections
            items = getattr(self, name)
            if items:
                out[name] = [_values(item, redact) for item in items]
        return out

    def replace(self, patch: Mapping[str, Mapping[str, Any]]) -> Config:
        """A new config with ``patch`` ({section: {key: value}}) applied, validated.

        A value of ``None`` resets an optional key. Raises :class:`ConfigError`.
        """
        merged = self.to_dict()
        for sec, values in patch.items():
            if sec in ARRAYS:
                raise ConfigError([ConfigIssue(sec, f"[[{sec}]] is changed in the file (or "
                                               "at run time through its actions)")])
            if not isinstance(values, Mapping):
                raise ConfigError([ConfigIssue(sec, f"must be a table, got {values!r}")])
            merged.setdefault(sec, {}).update(values)
        return config_check.from_dict(merged, None, Config)


def _values(item: Any, redact: bool) -> dict[str, Any]:
    return {f.name: REDACTED if redact and f.metadata.get("secret")
            and getattr(item, f.name) is not None else getattr(item, f.name)
            for f in dataclasses.fields(item)}


#: Sections that are lists of tables (``[[link]]``), and the table each item is.
ARRAYS: dict[str, type] = config_check.arrays_of(Config)
SECTIONS: dict[str, type] = config_check.sections_of(Config)


def describe() -> list[dict[str, Any]]:
    """Every key with its type, default, constraints and doc (for docs and the page)."""
    rows = []
    for sec, cls in {**SECTIONS, **ARRAYS}.items():
        hints = typing.get_type_hints(cls)
        defaults = cls()
        for f in dataclasses.fields(cls):
            rows.append({
                "key": f"{sec}.{f.name}",
                "type": type_name(hints[f.name]),
                "default": getattr(defaults, f.name),
                "choices": choices_of(hints[f.name]),
                **{k: v for k, v in f.metadata.items()},
                **({"array": True} if sec in ARRAYS else {}),
            })
    return rows


# ---------------------------------------------------------------------------------------
# reading and writing (device.config_check, device.config_store)


def from_dict(data: Mapping[str, Any], lines: Mapping[str, int] | None = None) -> Config:
    """Build a validated :class:`Config`; raises :class:`ConfigError` listing every issue."""
    return config_check.from_dict(data, lines, Config)


def parse(text: str, source: str = "<config>") -> Config:
    """Validate TOML text; raises :class:`ConfigError`."""
    return config_check.parse(text, source, Config)


def load(path: Path | str) -> Config:
    """Load and validate the file; a missing file gives the defaults.

    A file that cannot be used (a directory, unreadable, not UTF-8, nested too deeply)
    raises :class:`ConfigError` with one issue saying so.
    """
    return config_check.load(path, Config)


def dumps(config: Config, only_changed: bool = True) -> str:
    """Fresh TOML text for ``config``; by default only keys that differ from the defaults."""
    from device import config_store

    return config_store.dumps(config, only_changed)


def save(path: Path | str, config: Config, previous: Config | None = None) -> None:
    """Edit the file in place to hold ``config`` (see :mod:`device.config_store`); blocking."""
    from device import config_store

    config_store.save(path, config, previous)


def restart_scopes(old: Config, new: Config) -> set[str]:
    """The subsystems that must restart to apply the change from ``old`` to ``new``."""
    scopes: set[str] = set()
    if old.link != new.link or old.links != new.links:
        scopes.add("links")
    for sec in SECTIONS:
        a, b = getattr(old, sec), getattr(new, sec)
        for f in dataclasses.fields(a):
            if getattr(a, f.name) != getattr(b, f.name) and f.metadata.get("restart"):
                scopes.add(f.metadata["restart"])
    return scopes


def config_path_from_env(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("EDGEROOM_CONFIG") or DEFAULT_CONFIG_PATH)


def state_dir_from_env(explicit: str | None = None) -> Path:
    """The state dir, made absolute: children such as the local Janus run in other
    working directories, so a relative one would point somewhere else for them."""
    path = Path(explicit or os.environ.get("EDGEROOM_STATE_DIR") or DEFAULT_STATE_DIR)
    return path.absolute()


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_STATE_DIR",
    "REDACTED",
    "SECTIONS",
    "AudioConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "DisplayConfig",
    "GpioConfig",
    "RecordConfig",
    "RoomConfig",
    "SerialConfig",
    "SimConfig",
    "StreamConfig",
    "VideoConfig",
    "WebConfig",
    "choices_of",
    "config_path_from_env",
    "describe",
    "dumps",
    "from_dict",
    "load",
    "parse",
    "restart_scopes",
    "save",
    "setting",
    "state_dir_from_env",
]
