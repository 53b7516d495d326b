"""Queue and exchange ``x-arguments``: validation and equivalence, as RabbitMQ does them.

RabbitMQ checks the type and range of the arguments it knows at declare time
(``invalid arg 'x-max-length' ... {unacceptable_type,longstr}``), compares only those known
arguments when a queue is declared again, and ignores the rest. Field values arrive here
decoded, so wire types are inferred from Python types the way pika encodes them.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Callable
from typing import Any

from leveret.amqp.fields import FieldTable, Float32, TypedInt
from leveret.errors import PreconditionFailed


def wire_type(value: Any) -> str:
    """RabbitMQ's name for a decoded value's field type. Integers and 'f' floats decoded
    from the wire carry their type; plain Python values are named as pika encodes them."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, TypedInt):
        return value.type_name
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, Float32):
        return "float"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "longstr"
    if isinstance(value, bytes):
        return "binary"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return "void"


def erlang_term(value: Any) -> str:
    """A value as Erlang's ``~p`` prints it inside RabbitMQ's error texts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | bytes):
        raw = value if isinstance(value, str) else value.decode("utf-8", "replace")
        return f'<<"{raw}">>'
    return str(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_UNIT_SECONDS = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}
_INTERVAL = re.compile(r"([0-9]+)(.*)", re.S)


def parse_interval(text: str) -> float | None:
    """Seconds in a RabbitMQ age (``7D``, ``12h``, ``30s``: a positive integer and one of
    Y M D h m s, case-sensitive), or None when it is not one."""
    match = _INTERVAL.fullmatch(text)
    if match is None or not match.group(1):
        return None
    value, unit = int(match.group(1)), match.group(2)
    if value <= 0 or unit not in _UNIT_SECONDS:
        return None
    return value * _UNIT_SECONDS[unit]



# A check returns None when the value is acceptable, else RabbitMQ's reason term.
Check = Callable[[Any], str | None]


def _integer(maximum: int | None = None, zero_ok: bool = True) -> Check:
    def check(v: Any) -> str | None:
        if not _is_int(v):
            return f'"expected integer, got {wire_type(v)}"'
        if v < 0:
            return f"{{value_negative,{v}}}"
        if v == 0 and not zero_ok:
            return f"{{value_zero,{v}}}"
        if maximum is not None and v > maximum:
            return f"{{max_value_exceeded,{v}}}"
        return None
    return check


def _text(v: Any) -> str:
    return v if isinstance(v, str) else bytes(v).decode("utf-8", "replace")


def as_text(value: Any) -> str | None:
    """A text argument's value (a longstr may arrive as bytes), or None when absent."""
    return None if value is None else _text(value)


def _one_of(allowed: tuple[str, ...], reason: Callable[[str], str]) -> Check:
    return lambda v: None if _text(v) in allowed else reason(_text(v))


def _any_text(v: Any) -> str | None:
    return None


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"{{unacceptable_type,{wire_type(v)}}}"


# Arguments RabbitMQ knows, with the type class it checks first (a non-string exchange name
# gets the "invalid type" text, other strings "unacceptable_type") and the value check.
QUEUE_ARGUMENTS: dict[str, tuple[str, Check]] = {
    "x-expires": ("int", _integer(zero_ok=False)),
    "x-message-ttl": ("int", _integer()),
    "x-dead-letter-exchange": ("exchange", _any_text),
    "x-dead-letter-routing-key": ("str", _any_text),
    "x-max-length": ("int", _integer()),
    "x-max-length-bytes": ("int", _integer()),
    "x-max-in-memory-length": ("int", _integer()),
    "x-max-in-memory-bytes": ("int", _integer()),
    "x-max-priority": ("int", _integer(maximum=255)),
    "x-overflow": ("str", _one_of(("drop-head", "reject-publish", "reject-publish-dlx"),
                                  lambda _v: "invalid_overflow")),
    "x-queue-mode": ("str", _one_of(("default", "lazy"),
                                    lambda v: f"\"unsupported queue mode '{v}'\"")),
    "x-single-active-consumer": ("bool", _boolean),
    "x-queue-type": ("str", _one_of(("classic", "quorum", "stream"),
                                    lambda v: f"\"unsupported queue type '{v}'\"")),
    "x-delivery-limit": ("int", _integer()),
    "x-max-age": ("str", _any_text),
    "x-queue-master-locator": ("str", _any_text),
    "x-queue-leader-locator": ("str", _any_text),
    # leveret's own: opt-in consumer timeout, delayed retry of nacked messages, dedup
    "x-consumer-timeout": ("int", _integer()),
    "x-retry-delay": ("int", _integer()),
    "x-retry-max-delay": ("int", _integer()),
    "x-retry-multiplier": ("int", _integer(zero_ok=False)),
    "x-message-deduplication": ("bool", _boolean),
    "x-cache-size": ("int", _integer(zero_ok=False)),
    "x-cache-ttl": ("int", _integer(zero_ok=False)),
}

# Only these exchange arguments take part in equivalence checks.
EXCHANGE_EQUIVALENT = ("alternate-exchange",)


def validate_queue_arguments(arguments: FieldTable, where: str) -> None:
    """406 for a known argument of the wrong type or value, with RabbitMQ's texts.
    ``where`` is "queue 'q' in vhost '/'"."""
    for key, (kind, check) in QUEUE_ARGUMENTS.items():
        if key not in arguments:
            continue
        value = arguments[key]
        if key == "x-queue-type" and not isinstance(value, str):  # a longstr, nothing else
            raise PreconditionFailed(f"invalid arg '{key}' for {where}: "
                                     f"{{unacceptable_type,{wire_type(value)}}}")
        if kind in ("str", "exchange") and not isinstance(value, str | bytes):
            if kind == "exchange":  # RabbitMQ checks exchange names with another text
                raise PreconditionFailed(
                    f"invalid type '{wire_type(value)}' for arg '{key}' in {where}")
            raise PreconditionFailed(f"invalid arg '{key}' for {where}: "
                                     f"{{unacceptable_type,{wire_type(value)}}}")
        problem = check(value)
        if problem is not None:
            raise PreconditionFailed(f"invalid arg '{key}' for {where}: {problem}")
    if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
        raise PreconditionFailed(f"invalid arg 'x-dead-letter-routing-key' for {where}: "
                                 "routing_key_but_no_dlx_defined")


def _val(value: Any, typed: bool) -> str:
    if value is _MISSING:
        return "none"
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else (
        ("true" if value else "false") if isinstance(value, bool) else str(value))
    return f"the value '{text}' of type '{wire_type(value)}'" if typed else f"'{text}'"


_MISSING = object()


def assert_equivalent(have: FieldTable, got: FieldTable, keys: Any, where: str) -> None:
    """Raise 406 if a re-declaration differs from the original in a compared argument."""
    for key in keys:
        old, new = have.get(key, _MISSING), got.get(key, _MISSING)
        if old is _MISSING and new is _MISSING:
            continue
        if old is not _MISSING and new is not _MISSING:
            if (wire_type(old) == wire_type(new) and old == new) or (
                    _is_int(old) and _is_int(new) and old == new):
                continue
            raise PreconditionFailed(f"inequivalent arg '{key}' for {where}: received "
                                     f"{_val(new, False)} but current is {_val(old, False)}")
        raise PreconditionFailed(f"inequivalent arg '{key}' for {where}: received "
                                 f"{_val(new, True)} but current is {_val(old, True)}")
