"""HTTP plumbing every management endpoint shares: errors answered as RabbitMQ's
management plugin answers them, JSON in and out, and how names appear in URLs.

Handlers raise ``ApiError`` (or let a broker ``AMQPError`` through: the middleware in
``app.py`` maps it with ``amqp_error``), and never build error responses themselves.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from aiohttp import web

from leveret.amqp.fields import FieldTable
from leveret.broker import rabbit_definitions
from leveret.broker.rabbit_definitions import InvalidDefinition, jsonable
from leveret.errors import AccessRefused, AMQPError, NotFound

DEFAULT_EXCHANGE_ALIAS = "amq.default"  # the default exchange's name in URLs

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- errors ------------------------------------------------------------------------------

class ApiError(Exception):
    """An error answered as ``{"error": ..., "reason": ...}`` with an HTTP status."""

    def __init__(self, status: int, error: str, reason: Any,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.headers = headers or {}

    def response(self) -> web.Response:
        return json_response({"error": self.error, "reason": self.reason}, self.status,
                             headers=self.headers)


def not_found() -> ApiError:
    return ApiError(404, "Object Not Found", "Not Found")


def bad_request(reason: Any) -> ApiError:
    return ApiError(400, "bad_request", reason)


def not_authorised(reason: str) -> ApiError:
    return ApiError(401, "not_authorised", reason)


def amqp_error(exc: AMQPError) -> ApiError:
    """An AMQP error from the broker core, as the management plugin reports it."""
    if isinstance(exc, AccessRefused):  # RabbitMQ does not say which permission is missing
        return not_authorised("Access refused.")
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", exc.text)
    return bad_request(exc.text)


def raise_for(exc: AMQPError) -> NoReturn:
    """``amqp_error`` raised; the middleware does the same for an AMQPError let through."""
    raise amqp_error(exc) from exc


def missing_keys(body: dict[str, Any], *keys: str) -> None:
    """400 naming the missing keys the way RabbitMQ's Erlang error term does."""
    missing = [k for k in keys if k not in body]
    if missing:
        raise bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")


# -- JSON ------------------------------------------------------------------------------------

def json_response(data: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":"), default=jsonable),
                        status=status, content_type="application/json", headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)


def created(location: str | None = None) -> web.Response:
    return web.Response(status=201, headers={"Location": location} if location else None)


def field_table(value: Any) -> FieldTable:
    """JSON arguments as an AMQP field table (integers become longs, as RabbitMQ makes
    them); 400 when they are not an object."""
    try:
        return rabbit_definitions.field_table(value)
    except InvalidDefinition as exc:
        raise bad_request(exc.reason) from None


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as an object ({} when empty)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("not_json") from None
    if not isinstance(body, dict):
        raise bad_request("not_json")
    return body


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def exchange_name(path_name: str) -> str:
    """The exchange a URL names (``amq.default`` is the default exchange, ``""``)."""
    return "" if path_name == DEFAULT_EXCHANGE_ALIAS else path_name
