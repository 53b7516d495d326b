"""Messages over HTTP: publish to an exchange, get from a queue (as RabbitMQ), and leveret's
non-destructive peek, plus the aliveness test that uses both.

- POST /api/exchanges/{vhost}/{name}/publish {properties, routing_key, payload,
  payload_encoding: string|base64} -> {"routed": bool}
- POST /api/queues/{vhost}/{name}/get {count, ackmode, encoding: auto|base64, truncate}
  with ackmode ack_requeue_true | ack_requeue_false | reject_requeue_true |
  reject_requeue_false: the messages are taken, then acked or returned to the queue
  (redelivered from then on), as RabbitMQ's management plugin does over a channel.
- GET /api/queues/{vhost}/{name}/peek?count=N&offset=M[&encoding=..&truncate=..]
  (leveret extension): the ready messages from position ``offset``, left where they are
  and as they are (no redelivered flag, no delivery count, nothing counted as delivered).
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any

from aiohttp import web

from leveret.amqp.spec import Properties
from leveret.broker.entry import Entry
from leveret.broker.message import Message
from leveret.broker.queues import Queue
from leveret.broker.rabbit_definitions import jsonable
from leveret.broker.vhost import VirtualHost, check_properties
from leveret.errors import AMQPError, ConnectionError_
from leveret.management.auth import client_grants, vhost_of
from leveret.management.context import context
from leveret.management.http import (
    ApiError,
    bad_request,
    exchange_name,
    expect_within,
    field_table,
    json_response,
    missing_keys,
    raise_for,
    read_json,
)
from leveret.management.validate import integer, mapping, text

ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true",
            "reject_requeue_false")
STRING_PROPERTIES = ("content_type", "content_encoding", "correlation_id", "reply_to",
                     "expiration", "message_id", "type", "user_id", "app_id", "cluster_id")
MAX_PEEK = 500
# What a publish body holds besides the payload: properties (a content header is at most
# frame_max, 128 KiB, and JSON spells it longer), the routing key, the JSON around them.
PUBLISH_ROOM = 1 << 20


# -- properties between JSON and AMQP ---------------------------------------------------------

def properties_from_json(props: Any) -> Properties:
    """The properties as AMQP will carry them: 400 for what a content header cannot hold
    (a priority of 999, a 300-byte content type), not an error when encoding it."""
    if props is None or props == []:  # [] is how RabbitMQ shows no properties
        props = {}
    if not isinstance(props, dict):
        raise bad_request("properties must be an object")
    out = Properties()
    for name in STRING_PROPERTIES:
        if props.get(name) is not None:
            setattr(out, name, text(props, name))
    for name, limit in (("delivery_mode", 0xFF), ("priority", 0xFF),
                        ("timestamp", 0xFFFF_FFFF_FFFF_FFFF)):  # seconds, as AMQP has it
        if props.get(name) is not None:
            value = integer(props, name)
            if not 0 <= value <= limit:
                raise bad_request(f"{name} must be between 0 and {limit}, not {value}")
            setattr(out, name, value)
    if props.get("headers") is not None:
        out.headers = field_table(mapping(props, "headers"))
    return out


def _encoded(props: Properties) -> bytes:
    try:
        return props.encode()
    except (ValueError, struct.error) as exc:  # a short string over 255 bytes, say
        raise bad_request(f"invalid properties: {exc}") from None


def properties_json(props: Properties) -> dict[str, Any]:
    """Only the properties that are set, as RabbitMQ lists them."""
    found: dict[str, Any] = {}
    for name in Properties.__slots__:
        value = getattr(props, name)
        if value is not None:
            found[name] = jsonable(value)
    return found


def payload_json(body: bytes, encoding: str, truncate: int | None) -> tuple[str, str]:
    if truncate is not None:
        body = body[:truncate]
    if encoding == "auto":
        try:
            return body.decode("utf-8"), "string"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode(), "base64"


def message_json(message: Message, redelivered: bool, remaining: int, encoding: str,
                 truncate: int | None) -> dict[str, Any]:
    payload, used = payload_json(message.body, encoding, truncate)
    # No properties at all come out as [] in RabbitMQ (an empty Erlang proplist); kept so.
    props: Any = properties_json(message.properties) or []
    return {"payload_bytes": len(message.body), "redelivered": redelivered,
            "exchange": message.exchange, "routing_key": message.routing_key,
            "message_count": remaining, "properties": props,
            "payload": payload, "payload_encoding": used}


def _encoding_options(encoding: Any, truncate: Any) -> tuple[str, int | None]:
    if encoding not in ("auto", "base64"):
        raise bad_request(f"Unsupported encoding '{encoding}'; use auto or base64")
    if truncate in (None, ""):
        return encoding, None
    try:
        limit = int(truncate)
    except (TypeError, ValueError):
        raise bad_request("truncate must be an integer") from None
    return encoding, max(limit, 0)


# -- publish ------------------------------------------------------------------------------------

def publish_body_limit(request: web.Request) -> int:
    """The largest body a message within max_message_size needs: its payload in base64
    (4/3 of it) plus room for properties, headers and the routing key. A text payload
    heavy in JSON escapes can need more: such a message goes as base64."""
    max_size = context(request).node.limits.max_message_size
    return -(-max_size // 3) * 4 + PUBLISH_ROOM


def _publish_too_large(request: web.Request, size: int, limit: int) -> ApiError:
    max_size = context(request).node.limits.max_message_size
    return ApiError(413, "payload_too_large",
                    f"PRECONDITION_FAILED - request body of {size} bytes or more is larger "
                    f"than {limit}, the most a message within the configured max size "
                    f"{max_size} needs (its payload in base64)")


def _payload(body: dict[str, Any], max_size: int) -> bytes:
    encoding = body["payload_encoding"]
    if not isinstance(body["payload"], str):
        raise bad_request("payload_not_string")  # RabbitMQ's reason
    if encoding == "string":
        payload = body["payload"].encode()
    elif encoding == "base64":
        try:
            payload = base64.b64decode(body["payload"], validate=True)
        except binascii.Error:
            raise bad_request("payload is not valid base64") from None
    else:
        raise bad_request(["unsupported_encoding", encoding])
    if len(payload) > max_size:  # the text an AMQP publisher gets
        raise ApiError(413, "payload_too_large",
                       f"PRECONDITION_FAILED - message size {len(payload)} is larger than "
                       f"configured max size {max_size}")
    return payload


async def publish(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_of(request, ctx.node)
    user_grants = client_grants(request, ctx.node, vhost.name)
    body = await read_json(request, publish_body_limit(request), _publish_too_large)
    missing_keys(body, "properties", "routing_key", "payload", "payload_encoding")
    name = exchange_name(request.match_info["name"])
    payload = _payload(body, ctx.node.limits.max_message_size)
    routing_key = text(body, "routing_key")
    props = _encoded(properties_from_json(body["properties"]))
    if name not in vhost.exchanges:
        raise bad_request(f"404 NOT_FOUND - no exchange '{name}' in vhost '{vhost.name}'")
    message = Message(name, routing_key, props, payload)
    try:  # the checks of a channel, as RabbitMQ's management publishes through one
        exchange = vhost.authorize_publish(user_grants, name, routing_key)
        check_properties(message, user_grants)
    except AMQPError as exc:  # reported as the channel would have closed
        raise bad_request(f"{exc.reply_code} {exc.reply_text}") from exc
    _, routed, _, _ = vhost.publish(exchange, message, counters=vhost.own_counters)
    ctx.node.store_changed()  # make persistent messages durable soon, as after AMQP input
    return json_response({"routed": routed})


# -- get and peek ----------------------------------------------------------------------------

def _readable_queue(request: web.Request) -> tuple[VirtualHost, Queue]:
    """The queue of the URL, if the user may read it (404 / 401 otherwise)."""
    ctx = context(request)
    vhost = vhost_of(request, ctx.node)
    user_grants = client_grants(request, ctx.node, vhost.name)
    q = vhost.queues.get(request.match_info["name"])
    if q is None:
        raise ApiError(404, "not_found",
                       f"NOT_FOUND - no queue '{request.match_info['name']}' in vhost "
                       f"'{vhost.name}'")
    try:
        user_grants.check("read", "queue", q.name)
    except AMQPError as exc:
        raise_for(exc)
    return vhost, q


async def get_messages(request: web.Request) -> web.Response:
    """basic.get ``count`` times over a channel's operations, then settle by ``ackmode``."""
    body = await read_json(request)
    missing_keys(body, "count", "ackmode", "encoding")
    vhost, q = _readable_queue(request)
    ackmode = body["ackmode"]
    if ackmode not in ACKMODES:
        raise bad_request(f"Unsupported ackmode '{ackmode}'; use one of {', '.join(ACKMODES)}")
    encoding, truncate = _encoding_options(body["encoding"], body.get("truncate"))
    count = integer(body, "count")
    if q.exclusive:
        raise bad_request(f"RESOURCE_LOCKED - cannot obtain exclusive access to locked "
                          f"queue '{q.name}' in vhost '{vhost.name}'")
    taken: list[Entry] = []
    answer = []
    for _ in range(max(count, 0)):
        try:
            q, entry = vhost.get(q.name, False, None, counters=vhost.own_counters)
        except ConnectionError_ as exc:
            # RabbitMQ's plugin gets over a channel; a connection-level refusal (a
            # stream's 540) comes back as its code and text
            raise bad_request(f"{exc.reply_code} {exc.text}") from exc
        if entry is None:
            break
        taken.append(entry)
        answer.append(message_json(entry.message, entry.redelivered, q.message_count,
                                   encoding, truncate))
    if taken:
        if ackmode == "ack_requeue_false":
            vhost.own_counters.ack += len(taken)
            q.ack(taken)
        elif ackmode == "reject_requeue_false":
            q.reject(taken, requeue=False)  # dead-lettered, if the queue says so
        else:  # back to the queue, redelivered, as when RabbitMQ's channel closes
            q.requeue(taken)
        context(request).node.store_changed()
    return json_response(answer)


async def peek_messages(request: web.Request) -> web.Response:
    _, q = _readable_queue(request)
    query = request.query
    try:
        count = int(query.get("count", "1"))
        offset = int(query.get("offset", "0"))
    except ValueError:
        raise bad_request("count and offset must be integers") from None
    if count < 0 or offset < 0 or count > MAX_PEEK:
        raise bad_request(f"count must be between 0 and {MAX_PEEK}, offset at least 0")
    encoding, truncate = _encoding_options(query.get("encoding", "auto"),
                                           query.get("truncate"))
    total = q.message_count
    answer = []
    for position, (message, redelivered) in enumerate(q.ready_messages()):
        if position >= offset + count:
            break
        if position >= offset:
            item = message_json(message, redelivered, total - position - 1, encoding,
                                truncate)
            item["position"] = position
            answer.append(item)
    return json_response(answer)


# -- aliveness ------------------------------------------------------------------------------

ALIVENESS_QUEUE = "aliveness-test"


def round_trip(vhost: VirtualHost) -> bool:
    """Declare the ``aliveness-test`` queue, publish a message to it through the default
    exchange and take it back: the vhost routes and enqueues."""
    vhost.declare_queue(ALIVENESS_QUEUE, False, False, False, False, {}, None)
    message = Message("", ALIVENESS_QUEUE, b"\x00\x00", b"test_message")
    vhost.publish(vhost.exchanges[""], message)
    _, entry = vhost.get(ALIVENESS_QUEUE, True, None)
    return entry is not None and entry.message.body == b"test_message"


async def aliveness_test(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_of(request, ctx.node)
    user_grants = client_grants(request, ctx.node, vhost.name)
    # what the round trip's declare, publish and get need, checked in RabbitMQ's order
    user_grants.check("configure", "queue", ALIVENESS_QUEUE)
    user_grants.check("write", "exchange", "")
    user_grants.check("read", "queue", ALIVENESS_QUEUE)
    if not round_trip(vhost):
        return json_response({"status": "failed", "reason": "aliveness test failed"}, 503)
    return json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/exchanges/{vhost}/{name}/publish", publish,
               expect_handler=expect_within(publish_body_limit, _publish_too_large))
    r.add_post("/api/queues/{vhost}/{name}/get", get_messages)
    r.add_get("/api/queues/{vhost}/{name}/peek", peek_messages)
    r.add_get("/api/aliveness-test/{vhost}", aliveness_test)

