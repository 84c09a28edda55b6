"""Reading and validating the config file against the schema in :mod:`device.config`.

The same checks run on a file at load and on a change before it is saved, so a value
that saves always loads. Every problem becomes a :class:`ConfigIssue` naming the key
(and the line); a file that cannot be read at all gives one issue, never a traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import reprlib
import stat
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from device.errors import ConfigError, ConfigIssue
from drivers.common.actions import ROOM_NAME, ROOM_NAME_FORM
from drivers.common.listen import split_listen

#: The config class a check builds (:class:`device.config.Config`).
C = TypeVar("C")

#: A config file is a few kB; anything far larger is a mistake (or /dev/zero).
MAX_FILE_BYTES = 1024 * 1024

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlevel = 3


def show(value: Any) -> str:
    """A short repr for messages (bounded in length and depth)."""
    return _repr.repr(value)


def choices_of(tp: Any) -> list[Any] | None:
    """The values a key may take when they are a fixed list (Literal, or bool | Literal)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return list(typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        literals = [a for a in args if typing.get_origin(a) is Literal]
        if literals and bool in args:
            return [True, False, *(c for lit in literals for c in typing.get_args(lit))]
    return None


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        numbers = all(type(a) is int for a in typing.get_args(tp))
        return "integer" if numbers else "string"
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if type(None) not in typing.get_args(tp):
            return " or ".join(type_name(a) for a in args)
        return type_name(args[0]) + " (optional)"
    if origin is dict:
        return "table of integers"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(tp, str(tp))


# ---------------------------------------------------------------------------------------
# values

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check_text(value: str) -> None:
    """Raise ValueError if ``value`` cannot be stored as plain text in the file."""
    if m := _SURROGATE.search(value):
        raise ValueError(f"is not valid Unicode text (lone surrogate U+{ord(m.group()):04X} "
                         f"at position {m.start()})")
    if m := _CONTROL.search(value):
        raise ValueError(f"contains a control character (U+{ord(m.group()):04X} at position "
                         f"{m.start()}); only printable text is allowed")


def _check_listen(value: str) -> None:
    if value:
        split_listen(value)


def _check_room_name(value: str) -> None:
    if not re.fullmatch(ROOM_NAME, value):
        raise ValueError(f"got {show(value)}; a room name is {ROOM_NAME_FORM} (or give "
                         f"the room's number)")


#: Extra checks named by a setting's ``check`` (see :func:`device.config.setting`).
CHECKS: dict[str, Callable[[str], None]] = {"listen": _check_listen,
                                             "room_name": _check_room_name}


def check_value(key: str, tp: Any, value: Any, meta: Mapping[str, Any]) -> Any:
    """Return the value converted to ``tp`` or raise ValueError with what is allowed."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:
            return check_value(key, args[0], value, meta)
        reasons: dict[Any, str] = {}
        for arg in args:  # e.g. bool | Literal["auto"]: the first that takes it
            try:
                return check_value(key, arg, value, meta)
            except ValueError as exc:
                reasons[arg] = str(exc)
        listed = choices_of(tp)
        if listed is None:  # e.g. int | str: why the arm of the value's own type refused
            same = type(value) if type(value) in reasons else None
            raise ValueError(reasons[same] if same else
                             f"got {show(value)}; expected {type_name(tp)}")
        allowed = ", ".join(str(c).lower() if isinstance(c, bool) else repr(c)
                            for c in listed)
        raise ValueError(f"got {show(value)}; allowed: {allowed}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ValueError(f"got {show(value)}; allowed: {allowed}")
        return value
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"got {show(value)}; expected a table such as {{name = 17}}")
        out = {}
        for k, v in value.items():
            check_text(str(k))
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 53:
                raise ValueError(f"{k} = {show(v)}; expected a GPIO pin number 0-53")
            out[str(k)] = v
        return out
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"got {show(value)}; expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"got {show(value)}; expected an integer")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"got {show(value)}; expected a number")
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise ValueError(f"got {show(value)}; expected a string")
        check_text(value)
        pattern = meta.get("pattern")
        if pattern and not re.match(pattern, value):
            raise ValueError(f"got {show(value)}; does not match the expected form")
        if meta.get("check"):
            CHECKS[meta["check"]](value)
        return value
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"got {show(value)}; allowed range {num(lo)}..{num(hi)}")
    return value


def _clip(name: str, limit: int = 80) -> str:
    return name if len(name) <= limit else name[:limit] + "..."


def num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else str(x)


def _did_you_mean(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def sections_of(root: type) -> dict[str, type]:
    """The sections of a config class (its fields: name -> section dataclass), without
    its lists of tables (:func:`arrays_of`)."""
    return {name: tp for name, tp in typing.get_type_hints(root).items()
            if typing.get_origin(tp) is not tuple}


def arrays_of(root: type) -> dict[str, type]:
    """The lists of tables of a config class (``[[link]]``: fields typed
    ``tuple[Table, ...]``): name -> the table's dataclass."""
    return {name: typing.get_args(tp)[0] for name, tp in typing.get_type_hints(root).items()
            if typing.get_origin(tp) is tuple}


def from_dict(data: Mapping[str, Any], lines: Mapping[str, int] | None,
              root: type[C]) -> C:
    """Build a validated ``root`` (the config class, e.g. :class:`device.config.Config`);
    raises :class:`ConfigError` listing every issue."""
    lines = lines or {}
    known = sections_of(root)
    issues: list[ConfigIssue] = []

    def line_of(key: str) -> int | None:
        parts = key.split(".")
        while parts:
            if ".".join(parts) in lines:
                return lines[".".join(parts)]
            parts.pop()
        return None

    sections: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    arrays_known = arrays_of(root)
    for sec_name, raw in data.items():
        if sec_name in arrays_known:
            arrays[sec_name] = _array(sec_name, arrays_known[sec_name], raw, issues, line_of)
            continue
        if sec_name not in known:
            issues.append(ConfigIssue(
                _clip(sec_name), "unknown section"
                + _did_you_mean(sec_name, list(known)), line_of(sec_name)))
            continue
        if not isinstance(raw, Mapping):
            issues.append(ConfigIssue(sec_name, f"must be a table, got {show(raw)}",
                                      line_of(sec_name)))
            continue
        sections[sec_name] = _table(sec_name, known[sec_name], raw, issues, line_of)
    if issues:
        raise ConfigError(issues)
    return root(**{name: known[name](**kw) for name, kw in sections.items()}, **arrays)


def _table(name: str, cls: type, raw: Mapping[str, Any], issues: list[ConfigIssue],
           line_of: Callable[[str], int | None]) -> dict[str, Any]:
    """The checked keyword arguments of one table (issues appended)."""
    hints = typing.get_type_hints(cls)
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{name}.{key}"
        f = fields_by_name.get(key)
        if f is None:
            issues.append(ConfigIssue(
                _clip(dotted), "unknown key" + _did_you_mean(key, list(fields_by_name)),
                line_of(dotted)))
            continue
        try:
            kwargs[key] = check_value(dotted, hints[key], value, f.metadata)
        except ValueError as exc:
            issues.append(ConfigIssue(dotted, str(exc), line_of(dotted)))
    return kwargs


def _array(name: str, cls: Any, raw: Any, issues: list[ConfigIssue],
           line_of: Callable[[str], int | None]) -> tuple[Any, ...]:
    """The items of a list of tables (``[[link]]``), each checked like a section; ``cls``
    may limit them with ``MAX_ITEMS`` and name keys each must have in ``REQUIRED``."""
    if not isinstance(raw, list) or not all(isinstance(t, Mapping) for t in raw):
        issues.append(ConfigIssue(name, f"must be tables written [[{name}]]", line_of(name)))
        return ()
    limit = getattr(cls, "MAX_ITEMS", None)
    if limit is not None and len(raw) > limit:
        issues.append(ConfigIssue(name, f"{len(raw)} [[{name}]] tables; at most {limit}",
                                  line_of(name)))
        return ()
    items = []
    for i, table in enumerate(raw, start=1):
        before = len(issues)
        issues.extend(ConfigIssue(f"{name}[{i}].{key}", "missing (required)", line_of(name))
                      for key in getattr(cls, "REQUIRED", ()) if key not in table)
        kwargs = _table(f"{name}[{i}]", cls, table, issues, lambda _k: line_of(name))
        if len(issues) == before:
            items.append(cls(**kwargs))
    return tuple(items)


# ---------------------------------------------------------------------------------------
# text and files

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\s*(#.*)?$")
_KEYLINE = re.compile(r"^\s*([A-Za-z0-9_\-\".]+?)\s*=")


def key_lines(text: str) -> dict[str, int]:
    """Map dotted keys to the 1-based line that defines them (tables and plain keys)."""
    out: dict[str, int] = {}
    prefix = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if m := _HEADER.match(line):
            prefix = m.group(1).replace('"', "").replace(" ", "")
            out.setdefault(prefix, number)
            continue
        if m := _KEYLINE.match(line):
            key = m.group(1).replace('"', "")
            out.setdefault(f"{prefix}.{key}" if prefix else key, number)
    return out


def parse(text: str, source: str, root: type[C]) -> C:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        raise ConfigError([ConfigIssue("(syntax)", f"TOML syntax error: {exc}", line)],
                          source) from None
    except RecursionError:
        raise ConfigError([ConfigIssue("(syntax)", "arrays or tables nested too deeply")],
                          source) from None
    try:
        return from_dict(data, key_lines(text), root)
    except ConfigError as exc:
        raise ConfigError(exc.issues, source) from None
    except RecursionError:
        raise ConfigError([ConfigIssue("(file)", "tables nested too deeply")], source) from None


def _file_error(path: Path, message: str) -> ConfigError:
    return ConfigError([ConfigIssue("(file)", message)], str(path))


def read_text(path: Path) -> str | None:
    """The file's text, or None if it does not exist; ConfigError if it cannot be used."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise _file_error(path, "is a directory, not a config file")
        if not stat.S_ISREG(st.st_mode):
            raise _file_error(path, "is not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise _file_error(path, f"is {st.st_size} bytes; a config file is at most "
                                    f"{MAX_FILE_BYTES} bytes")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise _file_error(path, "cannot be read: permission denied") from None
    except OSError as exc:
        raise _file_error(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([ConfigIssue(
            "(file)", f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", line)],
            str(path)) from None


def load(path: Path | str, root: type[C]) -> C:
    """Load and validate the file; a missing file gives the defaults."""
    path = Path(path)
    text = read_text(path)
    if text is None:
        return root()
    return parse(text, str(path), root)
