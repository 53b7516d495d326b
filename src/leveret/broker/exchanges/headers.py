"""headers: match on message headers instead of the routing key.

The binding's ``x-match`` is ``all`` (default), ``any``, ``all-with-x`` or ``any-with-x``;
binding arguments starting with ``x-`` take part only in the ``-with-x`` forms. A binding
value of void (None) matches the header's presence, whatever its value.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from leveret.amqp.fields import FieldTable
from leveret.broker.arguments import wire_type
from leveret.broker.exchanges.base import Destination, Exchange
from leveret.broker.message import Message

_MISSING = object()
MATCH_MODES = ("all", "any", "all-with-x", "any-with-x")


def _erlang(value: Any) -> Any:
    """A value as RabbitMQ compares it (Erlang's ``==``): numbers by value whatever their
    width or kind, timestamps as integers, strings and byte arrays as binaries, booleans and
    decimals as distinct from every number."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    if isinstance(value, decimal.Decimal):
        return ("decimal", value)
    # Inside tables and arrays Erlang keeps each value's type next to it, so nested values
    # only match with the same wire type.
    if isinstance(value, dict):
        return tuple(sorted((k, wire_type(v), _erlang(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple((wire_type(v), _erlang(v)) for v in value)
    return value


def _same(a: Any, b: Any) -> bool:
    return bool(_erlang(a) == _erlang(b))


def headers_match(arguments: FieldTable, headers: FieldTable) -> bool:
    mode = arguments.get("x-match", "all")
    with_x = isinstance(mode, str) and mode.endswith("-with-x")
    want_all = mode in ("all", "all-with-x")
    for key, want in arguments.items():
        if key == "x-match" or (key.startswith("x-") and not with_x):
            continue
        have = headers.get(key, _MISSING)
        ok = have is not _MISSING and (want is None or _same(want, have))
        if ok and not want_all:
            return True
        if not ok and want_all:
            return False
    return want_all


class HeadersExchange(Exchange):
    TYPE = "headers"

    def route(self, message: Message, routing_key: str) -> list[Destination]:
        headers = message.headers
        found: dict[int, Destination] = {}
        for b in self.bindings.values():
            if headers_match(b.arguments, headers):
                found.setdefault(id(b.destination), b.destination)
        return list(found.values())
