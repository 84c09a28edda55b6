"""Text forms of the serial control protocol: decoding input lines, ``key=value`` pairs,
``OK``/``ERR``/``EV`` lines. Pure functions, no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from drivers.errors import EdgeroomError

EOL = "\r\n"
MAX_VALUE = 1000  # characters of one value in an output line

_BARE = re.compile(r"[A-Za-z0-9_.,:/@+\-]+")
_CODE = re.compile(r"[A-Z][A-Z0-9_]*")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ProtocolError(EdgeroomError, ValueError):
    """A line that gets ``ERR code reason`` (code is a stable upper-case word)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


def decode_line(raw: bytes) -> str:
    """The text of one input line, or :class:`ProtocolError` for what a line cannot hold."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("BAD_ENCODING", f"not UTF-8 (byte {exc.start})") from None
    bad = _FORBIDDEN.search(text)
    if bad:
        raise ProtocolError("BAD_CHARACTER", f"control character 0x{ord(bad.group()):02x} at "
                                             f"column {bad.start() + 1}")
    return text


def quote(value: str) -> str:
    """A value as written on the line: bare if it is one safe word, else double-quoted."""
    if len(value) > MAX_VALUE:
        value = value[:MAX_VALUE] + "..."
    if value and _BARE.fullmatch(value):
        return value
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    escaped = _FORBIDDEN.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)
    return f'"{escaped}"'


def scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def pairs(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key=value`` words for a mapping; nested mappings give dotted keys and lists of
    plain values a comma-separated value."""
    out: list[str] = []
    for key, value in data.items():
        name = f"{prefix}{_key(key)}"
        if isinstance(value, Mapping):
            out.extend(pairs(value, name + "."))
        elif isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            if all(isinstance(i, str | int | float) and not isinstance(i, bool) for i in items):
                out.append(f"{name}={quote(','.join(scalar(i) for i in items))}")
            else:
                out.append(f"{name}={quote(json.dumps(items, default=str))}")
        else:
            out.append(f"{name}={quote(scalar(value))}")
    return out


def _key(key: object) -> str:
    text = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(key))
    return text or "_"


def ok(*words: str, data: Mapping[str, Any] | None = None) -> str:
    return " ".join(["OK", *words, *pairs(data or {})])


def err(code: str, reason: str) -> str:
    code = code.upper() if _CODE.fullmatch(code.upper()) else "ERROR"
    reason = " ".join(reason.split())  # one line, whatever the message held
    reason = _FORBIDDEN.sub("?", reason)[:200].strip() or "failed"
    return f"ERR {code} {reason}"


def event(name: str, data: Mapping[str, Any]) -> str:
    return " ".join(["EV", _key(name), *pairs(data)])


def words(text: str) -> list[str]:
    return text.split()


def join_lines(lines: Iterable[str]) -> bytes:
    return "".join(line + EOL for line in lines).encode("utf-8", errors="replace")
