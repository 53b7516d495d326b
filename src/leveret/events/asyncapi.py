"""The application's AsyncAPI 3.0 document, from its bus: the exchange's channels (one per
event type, one per subscription pattern, one per responder and one for its replies), the
operations that send and receive on them, and each message's payload schema (a
responder's reply: its return annotation)."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from leveret.events import codec, envelope, topology
from leveret.events.bus import EventBus

REF = "#/components/schemas/{model}"


def _schema(cls: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    schema = codec.json_schema(cls, REF)
    schemas.update(schema.pop("$defs", {}))
    return schema


def _message(name: str, cls: Any, schemas: dict[str, Any],
             messages: dict[str, Any]) -> dict[str, str]:
    if name not in messages:
        messages[name] = {"name": name, "contentType": codec.CONTENT_TYPE,
                          "payload": _schema(cls, schemas)}
        if cls is not None and cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
            messages[name]["summary"] = cls.__doc__.strip().splitlines()[0]
    return {"$ref": f"#/components/messages/{name}"}


def _return_type(fn: Any) -> Any:
    """What a responder returns (its reply's payload type), None when not annotated."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: the reply is any JSON
        hints = {}
    answer = hints.get("return", inspect.signature(fn).return_annotation)
    if answer is inspect.Signature.empty or isinstance(answer, str):
        return None
    return type(None) if answer is None else answer


def _exchange_binding(bus: EventBus) -> dict[str, Any]:
    return {"amqp": {"is": "routingKey", "bindingVersion": "0.3.0",
                     "exchange": {"name": bus.exchange, "type": "topic", "durable": True,
                                  "autoDelete": False, "vhost": "/"}}}


def _key(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def document(bus: EventBus, title: str | None = None) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for type_name, cls in sorted(bus.events.items()):
        channels[_key(type_name)] = {
            "address": type_name, "description": f"{type_name} events",
            "messages": {_key(cls.__name__): _message(cls.__name__, cls, schemas, messages)},
            "bindings": _exchange_binding(bus)}
        operations[f"publish.{_key(type_name)}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{_key(type_name)}"}}
    for sub in bus.subscriptions:
        name = f"{sub.group}.{'_'.join(_key(p) for p in sub.patterns)}"
        classes = sub.handler.event_classes
        msgs = {_key(c.__name__): _message(c.__name__, c, schemas, messages) for c in classes}
        if not msgs:
            msgs = {"json": _message("AnyJSON", None, schemas, messages)}
        channels[name] = {
            "address": " | ".join(sub.patterns), "messages": msgs,
            "description": f"topic pattern(s) {', '.join(sub.patterns)} into queue "
                           f"{sub.group!r}; dead letters in {topology.dlq_name(sub.group)!r}",
            "bindings": _exchange_binding(bus)}
        operations[f"{sub.group}.receive"] = {
            "action": "receive", "channel": {"$ref": f"#/channels/{name}"},
            "summary": sub.handler.name,
            "bindings": {"amqp": {"ack": True, "bindingVersion": "0.3.0"}},
            "x-retry": {"maxAttempts": sub.retry.max_attempts,
                        "initialDelay": sub.retry.initial_delay,
                        "multiplier": sub.retry.multiplier, "maxDelay": sub.retry.max_delay}}
    for resp in bus.responders:
        queue = topology.rpc_queue_name(resp.name)
        request = resp.handler.payload_type
        req_name = request.__name__ if isinstance(request, type) else f"{resp.name}.request"
        reply = _return_type(resp.handler.fn)
        reply_name = reply.__name__ if codec.is_model(reply) else f"{resp.name}.reply"
        channels[_key(queue)] = {
            "address": queue,
            "messages": {"request": _message(req_name, request, schemas, messages)},
            "bindings": {"amqp": {"is": "queue", "bindingVersion": "0.3.0",
                                  "queue": {"name": queue, "durable": False,
                                            "autoDelete": True, "vhost": "/"}}}}
        reply_channel = f"{_key(queue)}.reply"
        channels[reply_channel] = {
            "address": None,
            "description": f"the replies of {resp.name}, sent to the requester's reply_to "
                           f"(direct reply-to); a failed request's reply has a null body "
                           f"and the error in the {envelope.ERROR!r} header",
            "messages": {"reply": _message(reply_name, reply, schemas, messages)}}
        operations[f"respond.{_key(resp.name)}"] = {
            "action": "receive", "channel": {"$ref": f"#/channels/{_key(queue)}"},
            "messages": [{"$ref": f"#/channels/{_key(queue)}/messages/request"}],
            "reply": {"channel": {"$ref": f"#/channels/{reply_channel}"},
                      "messages": [{"$ref": f"#/channels/{reply_channel}/messages/reply"}],
                      "address": {"location": "$message.header#/replyTo"}}}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": title or bus.name, "version": bus.version},
        "defaultContentType": codec.CONTENT_TYPE,
        "channels": channels, "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
