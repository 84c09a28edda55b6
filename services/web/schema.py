"""A small JSON Schema subset, used both to validate request bodies and to document them.

The OpenAPI document is built from the same schemas the server checks, so the two
cannot drift apart. Supported: ``type`` (object, string, integer, number, boolean),
``properties``, ``required``, ``additionalProperties: false``, ``minProperties``,
``enum``, ``minLength``/``maxLength``, ``pattern``, ``minimum``/``maximum``, ``anyOf``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from drivers.errors import EdgeroomError

Schema = dict[str, Any]


class BodyError(EdgeroomError, ValueError):
    """A request body does not match its schema; the message names the field."""


def obj(properties: Mapping[str, Schema], required: tuple[str, ...] = (),
        min_properties: int = 0) -> Schema:
    schema: Schema = {"type": "object", "properties": dict(properties),
                      "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if min_properties:
        schema["minProperties"] = min_properties
    return schema


def string(min_length: int = 0, max_length: int = 1000, pattern: str | None = None,
           enum: tuple[str, ...] | None = None) -> Schema:
    if enum is not None:
        return {"type": "string", "enum": list(enum)}
    schema: Schema = {"type": "string", "minLength": min_length, "maxLength": max_length}
    if pattern is not None:
        schema["pattern"] = pattern
    return schema


def integer(minimum: int, maximum: int) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


BOOLEAN: Schema = {"type": "boolean"}


def validate(value: Any, schema: Schema, where: str = "body") -> None:
    """Raise :class:`BodyError` naming the first field that does not fit ``schema``."""
    kind = schema.get("type")
    if "anyOf" in schema:  # e.g. a room: a number, or a name
        reasons = []
        for arm in schema["anyOf"]:
            try:
                return validate(value, arm, where)
            except BodyError as exc:
                reasons.append(str(exc))
        if "x-form" in schema:  # what the arms take, in words
            raise BodyError(f"{where} must be {schema['x-form']}, got {value!r:.40}")
        raise BodyError(" or ".join(reasons))
    if kind == "object":
        if not isinstance(value, dict):
            raise BodyError(f"{where} must be a JSON object")
        props: Mapping[str, Schema] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise BodyError(f"{where}: missing field {name!r}")
        if schema.get("additionalProperties") is False:
            unknown = sorted(set(value) - set(props))
            if unknown:
                allowed = ", ".join(sorted(props)) or "none"
                raise BodyError(f"{where}: unknown field {unknown[0]!r} (allowed: {allowed})")
        if len(value) < schema.get("minProperties", 0):
            raise BodyError(f"{where}: give at least one of {', '.join(sorted(props))}")
        for name, sub in props.items():
            if name in value:
                validate(value[name], sub, name if where == "body" else f"{where}.{name}")
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            raise BodyError(f"{where} must be true or false, got {value!r:.40}")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise BodyError(f"{where} must be an integer, got {value!r:.40}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise BodyError(f"{where} must be a number, got {value!r:.40}")
    elif kind == "string":
        if not isinstance(value, str):
            raise BodyError(f"{where} must be a string, got {value!r:.40}")
        if "enum" in schema and value not in schema["enum"]:
            raise BodyError(f"{where} must be one of {', '.join(schema['enum'])}, "
                            f"got {value!r:.40}")
        if len(value) < schema.get("minLength", 0):
            raise BodyError(f"{where} must not be empty" if schema.get("minLength") == 1
                            else f"{where} is shorter than {schema['minLength']} characters")
        if len(value) > schema.get("maxLength", math.inf):
            raise BodyError(f"{where} is longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise BodyError(f"{where} does not have the expected form")
        return
    if "minimum" in schema and value < schema["minimum"]:
        raise BodyError(f"{where} must be at least {schema['minimum']}, got {value!r}")
    if "maximum" in schema and value > schema["maximum"]:
        raise BodyError(f"{where} must be at most {schema['maximum']}, got {value!r}")
