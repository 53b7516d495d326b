"""Typed events: naming, JSON encoding, validation on receipt, and JSON Schema.

An event type is a pydantic model or a plain dataclass. pydantic is optional: with it,
dataclasses are validated field by field too (through a ``TypeAdapter``); without it they
are built with ``cls(**data)``, which checks names but not types.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from leveret.events.errors import EventValidationError

try:  # optional: the ``events`` extra installs it
    import pydantic
except ImportError:  # pragma: no cover - exercised only without the extra
    pydantic = None  # type: ignore[assignment]

T = TypeVar("T", bound=type)
CONTENT_TYPE = "application/json"


def event(type_name: str) -> Callable[[T], T]:
    """Name an event type; the name is its default routing key (``orders.placed``)."""

    def mark(cls: T) -> T:
        cls.__event_type__ = type_name  # type: ignore[attr-defined]
        return cls

    return mark


def event_type(cls: type) -> str:
    return str(getattr(cls, "__event_type__", None) or cls.__name__)


def is_model(cls: Any) -> bool:
    """Whether ``cls`` is something this package can encode and validate as an event."""
    if not isinstance(cls, type):
        return False
    if dataclasses.is_dataclass(cls):
        return True
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def _default(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


@functools.lru_cache(maxsize=512)
def _adapter(cls: Any) -> Any:
    assert pydantic is not None
    return pydantic.TypeAdapter(cls)


def encode(value: Any) -> bytes:
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return value.model_dump_json().encode()
    return json.dumps(value, default=_default, separators=(",", ":")).encode()


def decode(body: bytes, cls: Any, type_name: str) -> Any:
    """The payload as ``cls`` (``None``: plain JSON). Any failure is an
    ``EventValidationError`` so the caller can dead-letter it with the reason."""
    try:
        if cls is None or cls is Any:
            return json.loads(body)
        if pydantic is not None:
            if isinstance(cls, type) and issubclass(cls, pydantic.BaseModel):
                return cls.model_validate_json(body)
            return _adapter(cls).validate_json(body)
        data = json.loads(body)
        return cls(**data) if dataclasses.is_dataclass(cls) else data
    except EventValidationError:
        raise
    except Exception as exc:  # pydantic.ValidationError, JSONDecodeError, TypeError, ...
        raise EventValidationError(type_name, _one_line(exc)) from exc


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return " | ".join(line.strip() for line in text.splitlines() if line.strip()) or repr(exc)


def json_schema(cls: Any, ref_template: str = "#/components/schemas/{model}") -> dict[str, Any]:
    """JSON Schema of a payload type; nested definitions stay under ``$defs``."""
    if cls is None or cls is Any:
        return {}
    if pydantic is not None:
        return dict(_adapter(cls).json_schema(ref_template=ref_template))
    if dataclasses.is_dataclass(cls):  # pragma: no cover - without pydantic: names only
        return {"title": cls.__name__, "type": "object",
                "properties": {f.name: {} for f in dataclasses.fields(cls)}}
    return {}  # pragma: no cover
