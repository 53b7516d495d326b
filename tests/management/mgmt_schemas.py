"""JSON schemas of the management API's objects (RabbitMQ 3.10's field names and types),
checked with jsonschema. ``check(kind, value)`` validates one object, ``check_list`` a list.
"""

from __future__ import annotations

from typing import Any

import jsonschema

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
OBJ = {"type": "object"}
ARR = {"type": "array"}
NULL_OR_STR = {"type": ["string", "null"]}
RATE = {"type": "object", "required": ["rate"], "properties": {"rate": NUM}}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": sorted(required),
            "properties": {**required, **(optional or {})}}


def counted(*names: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name in names:
        props[name] = INT
        props[f"{name}_details"] = RATE
    return props


QUEUE_EVENTS = ("publish", "ack", "deliver", "deliver_get", "deliver_no_ack", "get",
                "get_empty", "get_no_ack", "redeliver")
CHANNEL_PUBLISHING = ("publish", "confirm", "return_unroutable", "drop_unroutable")
ALL_EVENTS = (*QUEUE_EVENTS, "confirm", "return_unroutable", "drop_unroutable")

MESSAGE_STATS = {"type": "object", "properties": counted(*ALL_EVENTS),
                 "additionalProperties": False}

DEPTHS = {**counted("messages", "messages_ready", "messages_unacknowledged")}

SCHEMAS: dict[str, dict[str, Any]] = {
    "overview": obj({
        "management_version": STR, "rates_mode": STR, "exchange_types": ARR,
        "product_version": STR, "product_name": STR, "rabbitmq_version": STR,
        "cluster_name": STR, "erlang_version": STR, "object_totals": obj({
            "connections": INT, "channels": INT, "consumers": INT, "exchanges": INT,
            "queues": INT}),
        "node": STR, "listeners": ARR, "contexts": ARR, "message_stats": OBJ,
        "queue_totals": obj(DEPTHS), "disable_stats": BOOL, "enable_queue_totals": BOOL,
        "sample_retention_policies": OBJ, "statistics_db_event_queue": INT}),
    "node": obj({
        "name": STR, "type": STR, "running": BOOL, "os_pid": STR, "uptime": INT,
        "processors": INT, "mem_limit": INT, "mem_used": INT, "mem_alarm": BOOL,
        "disk_free_limit": INT, "disk_free": INT, "disk_free_alarm": BOOL, "fd_total": INT,
        "fd_used": INT, "exchange_types": ARR, "auth_mechanisms": ARR, "applications": ARR,
        "partitions": ARR, "rates_mode": STR}),
    "vhost": obj({
        "name": STR, "description": STR, "tags": ARR, "default_queue_type": STR,
        "metadata": obj({"description": STR, "tags": ARR}), "tracing": BOOL,
        "cluster_state": OBJ}, {**DEPTHS, "message_stats": MESSAGE_STATS,
                                "recv_oct": INT, "send_oct": INT,
                                "recv_oct_details": RATE, "send_oct_details": RATE}),
    "user": obj({"name": STR, "password_hash": STR, "hashing_algorithm": STR, "tags": ARR,
                 "limits": OBJ}),
    "whoami": obj({"name": STR, "tags": ARR}),
    "permission": obj({"user": STR, "vhost": STR, "configure": STR, "write": STR,
                       "read": STR}),
    "topic_permission": obj({"user": STR, "vhost": STR, "exchange": STR, "write": STR,
                             "read": STR}),
    "vhost_limit": obj({"vhost": STR, "value": OBJ}),
    "user_limit": obj({"user": STR, "value": OBJ}),
    "exchange": obj({"name": STR, "vhost": STR, "type": STR, "durable": BOOL,
                     "auto_delete": BOOL, "internal": BOOL, "arguments": OBJ},
                    {"policy": STR, "incoming": ARR, "outgoing": ARR}),
    "queue": obj({
        "name": STR, "vhost": STR, "node": STR, "type": STR, "state": STR, "durable": BOOL,
        "auto_delete": BOOL, "exclusive": BOOL, "arguments": OBJ, "policy": NULL_OR_STR,
        "effective_policy_definition": OBJ, "consumers": INT, "messages": INT,
        "messages_ready": INT, "messages_unacknowledged": INT, "message_bytes": INT,
        "message_bytes_ready": INT, "message_bytes_unacknowledged": INT,
        "exclusive_consumer_tag": NULL_OR_STR, "single_active_consumer_tag": NULL_OR_STR},
        {**DEPTHS, "message_stats": {"type": "object", "properties": counted(*QUEUE_EVENTS),
                                     "additionalProperties": False},
         "consumer_details": ARR, "incoming": ARR, "deliveries": ARR}),
    "binding": obj({"source": STR, "vhost": STR, "destination": STR,
                    "destination_type": {"enum": ["queue", "exchange"]}, "routing_key": STR,
                    "arguments": OBJ, "properties_key": STR}),
    "connection": obj({
        "name": STR, "node": STR, "type": STR, "protocol": STR, "state": STR, "user": STR,
        "vhost": STR, "client_properties": OBJ, "channels": INT, "channel_max": INT,
        "frame_max": INT, "timeout": INT, "connected_at": INT, "host": STR, "port": INT,
        "peer_host": STR, "peer_port": INT, "ssl": BOOL},
        {"recv_oct": INT, "send_oct": INT, "recv_oct_details": RATE,
         "send_oct_details": RATE, "user_provided_name": STR}),
    "channel": obj({
        "name": STR, "node": STR, "number": INT, "user": STR, "vhost": STR, "state": STR,
        "connection_details": obj({"name": STR, "peer_host": STR, "peer_port": INT}),
        "consumer_count": INT, "prefetch_count": INT, "global_prefetch_count": INT,
        "confirm": BOOL, "transactional": BOOL, "messages_unacknowledged": INT,
        "messages_unconfirmed": INT, "messages_uncommitted": INT, "acks_uncommitted": INT},
        {"message_stats": MESSAGE_STATS}),
    "consumer": obj({
        "consumer_tag": STR, "exclusive": BOOL, "ack_required": BOOL, "prefetch_count": INT,
        "arguments": OBJ, "active": BOOL, "activity_status": STR,
        "queue": obj({"name": STR, "vhost": STR}),
        "channel_details": obj({"name": STR, "connection_name": STR, "node": STR,
                                "number": INT, "peer_host": STR, "peer_port": INT,
                                "user": STR})}),
    "policy": obj({"vhost": STR, "name": STR, "pattern": STR, "apply-to": STR,
                   "definition": OBJ, "priority": INT}),
    "message": obj({"payload_bytes": INT, "redelivered": BOOL, "exchange": STR,
                    "routing_key": STR, "message_count": INT,
                    "properties": {"type": ["object", "array"]},  # [] when none, as RabbitMQ
                    "payload": STR, "payload_encoding": {"enum": ["string", "base64"]}},
                   {"position": INT}),
    "definitions": obj({
        "rabbit_version": STR, "rabbitmq_version": STR, "product_name": STR,
        "product_version": STR, "users": ARR, "vhosts": ARR, "permissions": ARR,
        "topic_permissions": ARR, "parameters": ARR, "global_parameters": ARR,
        "policies": ARR, "queues": ARR, "exchanges": ARR, "bindings": ARR}),
    "vhost_definitions": obj({
        "rabbit_version": STR, "parameters": ARR, "policies": ARR, "queues": ARR,
        "exchanges": ARR, "bindings": ARR}),
    "error": obj({"error": STR, "reason": {}}),
    "page": obj({"filtered_count": INT, "item_count": INT, "items": ARR, "page": INT,
                 "page_count": INT, "page_size": INT, "total_count": INT}),
}


def check(kind: str, value: Any) -> Any:
    jsonschema.validate(value, SCHEMAS[kind])
    return value


def check_list(kind: str, values: Any) -> Any:
    assert isinstance(values, list), values
    for value in values:
        check(kind, value)
    return values
