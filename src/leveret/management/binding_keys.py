"""The ``properties_key`` naming a binding in URLs, formed and matched as RabbitMQ does.

A binding has no name of its own: RabbitMQ's management API names it by its routing key
and a hash of its arguments, and sends the key quoted once more in Location headers.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from leveret.broker.rabbit_definitions import jsonable


def arguments_hash(arguments: dict[str, Any]) -> str:
    """Short and URL-safe; leveret's own (RabbitMQ hashes the Erlang term with phash2)."""
    if not arguments:
        return ""
    canonical = json.dumps(jsonable(arguments), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha1(canonical.encode()).digest()[:4]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    """The key naming a binding in URLs, as RabbitMQ forms it: the routing key quoted
    (quote_plus), plus ``~`` and a hash of the arguments when there are some; ``~`` alone
    for an empty routing key without arguments."""
    quoted = quote_plus(routing_key, safe="")
    if not arguments:
        return quoted or "~"
    return f"{quoted}~{arguments_hash(arguments)}"


def matches_properties_key(wanted: str, routing_key: str, arguments: dict[str, Any]) -> bool:
    """Whether ``wanted`` (a path segment, already decoded once) names this binding. As in
    RabbitMQ the routing key part is unquoted once more, so both the key as listed
    ("a.%23") and as the Location header gives it ("a.%2523") find the binding."""
    key, _, args_hash = wanted.rpartition("~") if "~" in wanted else (wanted, "", "")
    return unquote_plus(key) == routing_key and args_hash == arguments_hash(arguments)


def location_quote(key: str) -> str:
    """A properties key in a Location header: quoted once more, as RabbitMQ sends it."""
    return quote(key, safe="~")
