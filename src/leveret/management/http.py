"""HTTP plumbing every management endpoint shares: errors answered as RabbitMQ's
management plugin answers them, JSON in and out, and how names appear in URLs.

Handlers raise ``ApiError`` (or let a broker ``AMQPError`` through: the middleware in
``app.py`` maps it with ``amqp_error``), and never build error responses themselves.

Request bodies are read only through ``read_body``/``read_json``, each call bounded by
what its endpoint can need: a Content-Length over the bound is refused before a byte of the
body is read, a chunked body as soon as it passes the bound, and a client that asks first
(``Expect: 100-continue``, as curl does for large bodies) on a route registered with
``expect_within`` is refused before it sends the body at all.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from aiohttp import HttpVersion11, web

from leveret.amqp.fields import FieldTable
from leveret.broker import rabbit_definitions
from leveret.broker.rabbit_definitions import InvalidDefinition, jsonable
from leveret.errors import AccessRefused, AMQPError, NotFound

DEFAULT_EXCHANGE_ALIAS = "amq.default"  # the default exchange's name in URLs

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BodyLimit = Callable[[web.Request], int]
ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
Refusal = Callable[[web.Request, int, int], "ApiError"]  # (request, size, limit): a 413

# Bodies of the ordinary endpoints: an object of a few fields, arguments, a list of names.
JSON_BODY_LIMIT = 1 << 20
# Deeper JSON means nothing to any endpoint, and parsing or converting it recurses.
MAX_JSON_DEPTH = 64


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


def too_large(request: web.Request, size: int, limit: int) -> ApiError:
    return ApiError(413, "payload_too_large",
                    f"request body of {size} bytes or more is larger than this endpoint "
                    f"accepts ({limit} bytes)")


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


def check_length(request: web.Request, limit: int, refuse: Refusal = too_large) -> None:
    """Refuse a body whose Content-Length is over ``limit``, before reading any of it."""
    length = request.content_length
    if length is not None and length > limit:
        raise refuse(request, length, limit)


async def read_body(request: web.Request, limit: int,
                    refuse: Refusal = too_large) -> bytearray:
    """The request body, refused with ``refuse`` (413) when over ``limit``
    bytes: from its Content-Length before reading, or while reading a chunked one."""
    check_length(request, limit, refuse)
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise refuse(request, len(body), limit)
    return body


def parse_json(raw: bytes | bytearray | str) -> Any:
    """A JSON document, 400 ``not_json`` when it is not one or nests deeper than
    MAX_JSON_DEPTH (which every later step would have to recurse through)."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise bad_request(f"not_json: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise bad_request("not_json") from None
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise bad_request(f"not_json: nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else (
            value if isinstance(value, list) else ())
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                pending.append((child, depth + 1))
    return False


async def read_json(request: web.Request, limit: int = JSON_BODY_LIMIT,
                    refuse: Refusal = too_large) -> dict[str, Any]:
    """The request body as an object ({} when empty), at most ``limit`` bytes."""
    raw = await read_body(request, limit, refuse)
    if not raw or raw.isspace():  # no strip(): that would copy a large body
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise bad_request("not_json")
    return body


def expect_within(limit: BodyLimit,
                  refuse: Refusal = too_large) -> ExpectHandler:
    """An expect handler for a route taking large bodies: a client that announces a body
    over ``limit(request)`` is refused before sending it; any other is told to go on."""
    async def expect(request: web.Request) -> web.StreamResponse | None:
        length = request.content_length
        if length is not None and length > limit(request):
            return refuse(request, length, limit(request)).response()
        if request.version == HttpVersion11:  # as aiohttp's own expect handler
            expected = request.headers.get("Expect", "")
            if expected.lower() != "100-continue":
                raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expected}")
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the response proper has not started
        return None
    return expect


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def exchange_name(path_name: str) -> str:
    """The exchange a URL names (``amq.default`` is the default exchange, ``""``)."""
    return "" if path_name == DEFAULT_EXCHANGE_ALIAS else path_name
