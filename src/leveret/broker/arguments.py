"""Queue and exchange ``x-arguments``: validation and equivalence, as RabbitMQ does them.

RabbitMQ checks the type and range of the arguments it knows at declare time
(``invalid arg 'x-max-length' ... {unacceptable_type,longstr}``), compares only those known
arguments when a queue is declared again, and ignores the rest. Field values arrive here
decoded, so wire types are inferred from Python types the way pika encodes them.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable
from typing import Any

from leveret.amqp.fields import FieldTable
from leveret.errors import PreconditionFailed


def wire_type(value: Any) -> str:
    """RabbitMQ's name for the field type a decoded value most likely had."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, str):
        return "longstr"
    if isinstance(value, bytes):
        return "binary"
    if isinstance(value, float):
        return "double"
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


def _int_check(minimum: int, maximum: int | None = None) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not _is_int(v):
            return f"{{unacceptable_type,{wire_type(v)}}}"
        if v < minimum:
            return f"{{value_negative,{v}}}" if minimum == 0 else f"{{value_zero,{v}}}"
        if maximum is not None and v > maximum:
            return f"{{value_too_large,{v},{maximum}}}"
        return None
    return check


def _str_check(allowed: tuple[str, ...] | None = None) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not isinstance(v, str | bytes):
            return f"{{unacceptable_type,{wire_type(v)}}}"
        text = v if isinstance(v, str) else v.decode("utf-8", "replace")
        if allowed is not None and text not in allowed:
            return f"{{unacceptable_value,{erlang_term(v)}}}"
        return None
    return check


def _bool_check(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"{{unacceptable_type,{wire_type(v)}}}"


QUEUE_ARGUMENTS: dict[str, Callable[[Any], str | None]] = {
    "x-expires": _int_check(1),
    "x-message-ttl": _int_check(0),
    "x-dead-letter-exchange": _str_check(),
    "x-dead-letter-routing-key": _str_check(),
    "x-max-length": _int_check(0),
    "x-max-length-bytes": _int_check(0),
    "x-max-in-memory-length": _int_check(0),
    "x-max-in-memory-bytes": _int_check(0),
    "x-max-priority": _int_check(0, 255),
    "x-overflow": _str_check(("drop-head", "reject-publish", "reject-publish-dlx")),
    "x-queue-mode": _str_check(("default", "lazy")),
    "x-single-active-consumer": _bool_check,
    "x-queue-type": _str_check(("classic", "quorum", "stream")),
    "x-delivery-limit": _int_check(0),
    "x-max-age": _str_check(),
    "x-queue-master-locator": _str_check(("client-local", "min-masters", "random")),
    "x-queue-leader-locator": _str_check(("client-local", "balanced")),
}

# Only these exchange arguments take part in equivalence checks.
EXCHANGE_EQUIVALENT = ("alternate-exchange",)


def validate_queue_arguments(arguments: FieldTable, where: str) -> None:
    for key, check in QUEUE_ARGUMENTS.items():
        if key in arguments:
            problem = check(arguments[key])
            if problem is not None:
                raise PreconditionFailed(f"invalid arg '{key}' for {where}: {problem}")


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
            if wire_type(old) == wire_type(new) and old == new or (
                    _is_int(old) and _is_int(new) and old == new):
                continue
            raise PreconditionFailed(f"inequivalent arg '{key}' for {where}: received "
                                     f"{_val(new, False)} but current is {_val(old, False)}")
        raise PreconditionFailed(f"inequivalent arg '{key}' for {where}: received "
                                 f"{_val(new, True)} but current is {_val(old, True)}")
