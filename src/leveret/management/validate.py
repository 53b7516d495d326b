"""Typed fields of a request body: each getter returns the field as the handler needs it, or
answers 400 naming the field, so a wrong JSON type is refused before anything changes.

    durable = boolean(body, "durable")            # ["not_boolean", 5], as RabbitMQ says
    count = integer(body, "count")                # ["not_integer", "x"]
    name = text(body, "routing_key", "")          # "routing_key must be a string, not {}"
    names = text_list(body, "users")              # a list of strings, never one string

Where RabbitMQ names the error (``not_boolean``, ``not_integer``) the reason is its term;
where RabbitMQ crashes with a 500 the reason names the field and the type it wants.
"""

from __future__ import annotations

import json
import re
from typing import Any

from leveret.management.http import ApiError, bad_request

_ABSENT: Any = object()


def _shown(value: Any) -> str:
    return json.dumps(value)[:100]


def _wrong(key: str, wanted: str, value: Any) -> ApiError:
    return bad_request(f"{key} must be {wanted}, not {_shown(value)}")


def boolean(body: dict[str, Any], key: str, default: bool = False) -> bool:
    """true/false, or the strings "true"/"false" (RabbitMQ's forms take both)."""
    value = body.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad_request(["not_boolean", value])


def integer(body: dict[str, Any], key: str, default: int | None = None) -> int:
    """A whole number, or a string of one; ``default`` when absent (required without)."""
    value = body.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    raise bad_request(["not_integer", value])


def text(body: dict[str, Any], key: str, default: str | None = None) -> str:
    """A string; a whole number is taken as its decimal text, as RabbitMQ takes it."""
    value = body.get(key, default)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _wrong(key, "a string", value)


def optional_text(body: dict[str, Any], key: str) -> str | None:
    return None if body.get(key) is None else text(body, key)


def mapping(body: dict[str, Any], key: str) -> dict[str, Any]:
    """An object; {} when absent or null."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong(key, "an object", value)
    return value


def text_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(key, "a list of strings", value)
    return value


def tags(body: dict[str, Any], key: str = "tags") -> list[str]:
    """Tags as RabbitMQ takes them: a list of strings or one comma-separated string."""
    value = body.get(key, _ABSENT)
    if value is _ABSENT or value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return value
    raise _wrong(key, "a list of strings or a comma-separated string", value)
