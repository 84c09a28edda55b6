"""Writing the config file: edits in place, so the operator's file keeps its shape.

A save changes only the keys whose value changed: comments, key order and blank lines
survive (``tomlkit`` keeps them). A key reset to unset is removed; a key that is not in
the file yet is added to its table (the table is added if needed), unless it is set to
its default. Before anything is written, the new text is read back with the loader and
checked against the schema: a value that saves always loads. The write itself is atomic
(:func:`drivers.common.atomicfile.atomic_write`) and blocking.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import tomlkit
import tomlkit.exceptions
from tomlkit.container import Container
from tomlkit.items import Item

from device import config_check
from device.errors import ConfigError, ConfigIssue
from drivers.common.atomicfile import atomic_write


class Config(Protocol):
    """A config object (:class:`device.config.Config`): frozen sections of keys."""

    def to_dict(self, redact: bool = False) -> dict[str, Any]: ...

#: Mode of a config file the appliance creates (it may hold the room PIN and secrets).
NEW_FILE_MODE = 0o600


def toml_value(value: Any) -> str:
    """One value as TOML text (tables inline)."""
    if isinstance(value, Mapping):
        table = tomlkit.inline_table()
        table.update(value)
        return table.as_string()
    return tomlkit.item(value).as_string()


def _item(value: Any) -> Any:
    if isinstance(value, Mapping):
        table = tomlkit.inline_table()
        table.update(value)
        return table
    return value


def _plain(value: Any) -> Any:
    return value.unwrap() if isinstance(value, Item | Container) else value


def _changed_keys(config: Any, previous: Any | None) -> Iterator[tuple[str, str, Any]]:
    for sec in config_check.sections_of(type(config)):
        section = getattr(config, sec)
        before = getattr(previous, sec) if previous is not None else None
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if before is None or getattr(before, f.name) != value:
                yield sec, f.name, value


def edit(text: str, config: Config, previous: Config | None = None) -> str:
    """``text`` with the keys that differ between ``previous`` and ``config`` set.

    Without ``previous``, every key whose value in the file differs from ``config``.
    """
    doc = tomlkit.parse(text) if text.strip() else tomlkit.document()
    defaults = type(config)()
    for sec, key, value in _changed_keys(config, previous):
        table = doc.get(sec)
        if table is not None and key in table:
            if value is None:
                del table[key]
            elif _plain(table[key]) != value:
                table[key] = _item(value)
            continue
        if value is None or value == getattr(getattr(defaults, sec), key):
            continue
        if table is None:
            doc.add(sec, tomlkit.table())
            table = doc[sec]
        table[key] = _item(value)
    return tomlkit.dumps(doc)


def _verify(text: str, config: Config, previous: Config | None,
            source: str) -> None:
    """The text loads, and holds the new value of every key that was written."""
    loaded = config_check.parse(text, source, type(config))
    wrong = [ConfigIssue(f"{sec}.{key}", f"would not read back as {config_check.show(value)}")
             for sec, key, value in _changed_keys(config, previous)
             if getattr(getattr(loaded, sec), key) != value]
    if wrong:
        raise ConfigError(wrong, source)


def save(path: Path | str, config: Config,
         previous: Config | None = None) -> None:
    """Edit the file at ``path`` (through a symlink) to hold ``config``; atomic, blocking.

    ``previous`` is the config the change was made from: only keys that differ from it
    are written, so an edit made by hand to other keys in the meantime is kept. A new
    (or empty) file gets every key that differs from its default.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        text = config_check.read_text(target) or ""
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        text, st = "", None
    if not text.strip():
        previous = None  # a new file (first save, after a factory reset): all that is set
    try:
        new_text = edit(text, config, previous)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError([ConfigIssue("(syntax)", f"the file on disk is not valid TOML "
                                       f"({exc}); not saved", getattr(exc, "line", None))],
                          str(path)) from None
    _verify(new_text, config, previous, str(path))
    mode = NEW_FILE_MODE if st is None else (st.st_mode & 0o770)
    owner = None if st is None else (st.st_uid, st.st_gid)
    atomic_write(target, new_text.encode("utf-8"), mode=mode, owner=owner)


def dumps(config: Config, only_changed: bool = True) -> str:
    """Fresh TOML text for ``config``; by default only keys that differ from the defaults."""
    defaults = type(config)().to_dict()
    doc = tomlkit.document()
    for sec, values in config.to_dict().items():
        if sec in config_check.arrays_of(type(config)):
            tables = tomlkit.aot()
            for item in values:
                t = tomlkit.table()
                for key, value in item.items():
                    if value is not None and value != "":
                        t[key] = _item(value)
                tables.append(t)
            doc.add(sec, tables)
            continue
        table = tomlkit.table()
        for key, value in values.items():
            if value is not None and (not only_changed or defaults[sec].get(key) != value):
                table[key] = _item(value)
        if table:
            doc.add(sec, table)
    return tomlkit.dumps(doc)
