"""Stream queues in the management API: the queue and consumer JSON (RabbitMQ 3.10's
counts and keys, leveret's ``stream`` object), purge and get refused with RabbitMQ's
texts, policies with the stream keys validated and applied to existing streams. The
differential tests run the same requests against the reference RabbitMQ."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pytest
from mgmt_helpers import Api, q, unique
from test_mgmt_differential import ERLANG, Pair, pair, shape_problems, wait_for

__all__ = ["pair"]  # the fixture, from the differential tests

REFERENCE_AMQP_PORT = 5673

# Keys RabbitMQ shows for a stream that leveret does not (the Erlang VM's), and leveret's
# additions: the byte counts and the stream object, on the queue and on its consumers.
STREAM_NOT_PROVIDED = ERLANG
STREAM_EXTRA = {"message_bytes", "message_bytes_ready", "message_bytes_unacknowledged",
                "stream", "consumer_details[0].stream"}


@contextmanager
def stream_with_reader(port: int, vhost: str, name: str, published: int = 10,
                       prefetch: int = 3, **arguments: Any) -> Iterator[list[int]]:
    """A stream declared over AMQP, ``published`` messages in it and a consumer from
    ``first`` with ``prefetch``, holding its deliveries unacknowledged while in the block.
    Yields the delivery tags received."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials("guest", "guest")))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(name, durable=True,
                         arguments={"x-queue-type": "stream", **arguments})
        for i in range(published):
            ch.basic_publish("", name, f"message-{i}".encode())
        reader = conn.channel()
        reader.basic_qos(prefetch_count=prefetch)
        got: list[int] = []
        reader.basic_consume(name, lambda _c, m, _p, _b: got.append(m.delivery_tag),
                             arguments={"x-stream-offset": "first"}, consumer_tag="reader")
        deadline = time.monotonic() + 5
        while len(got) < min(prefetch, published) and time.monotonic() < deadline:
            conn.process_data_events(0.05)
        yield got
    finally:
        conn.close()


# -- leveret ------------------------------------------------------------------------------

def test_stream_queue_json(api: Api) -> None:
    name = unique("stream")
    with stream_with_reader(api.amqp_port or 0, "/", name, **{"x-max-age": "7D"}) as got:
        assert len(got) == 3
        item = api.get(f"/api/queues/%2F/{name}").json
        assert item["type"] == "stream"
        assert item["arguments"] == {"x-queue-type": "stream", "x-max-age": "7D"}
        # RabbitMQ 3.10: every retained entry is ready, none unacknowledged
        assert (item["messages"], item["messages_ready"],
                item["messages_unacknowledged"]) == (10, 10, 0)
        assert item["consumers"] == 1
        assert item["members"] == item["online"] == [item["node"]]
        assert item["readers"] == {item["node"]: 1}
        stream = item["stream"]
        assert (stream["first_offset"], stream["last_offset"], stream["next_offset"]) == \
            (0, 9, 10)
        assert stream["segments"] == 1
        assert stream["bytes"] == item["message_bytes"] > 10 * len(b"message-0")
        assert stream["retention"] == {"max_length_bytes": None,
                                       "max_age_seconds": 7 * 86400,
                                       "max_segment_size_bytes": 500_000_000}
        [reader] = stream["consumers"]
        assert reader["consumer_tag"] == "reader"
        assert (reader["next_offset"], reader["lag"]) == (3, 7)
        assert reader["channel"].endswith(" (2)")
        details = item["consumer_details"][0]
        assert details["stream"] == {"next_offset": 3, "lag": 7}
        assert details["arguments"] == {"x-stream-offset": "first"}
        # consumer listings carry the offset too
        [listed] = [c for c in api.get("/api/consumers/%2F").json
                    if c["queue"]["name"] == name]
        assert listed["stream"] == {"next_offset": 3, "lag": 7}
        # and the queue listing, the stream object
        [row] = [x for x in api.get("/api/queues/%2F").json if x["name"] == name]
        assert row["stream"]["next_offset"] == 10 and row["messages"] == 10
        # classic-queue internals are not shown for a stream, as in RabbitMQ
        for key in ("messages_paged_out", "consumer_utilisation", "messages_ram"):
            assert key not in item
    # the consumer gone, the entries stay
    item = api.get(f"/api/queues/%2F/{name}").json
    assert (item["messages"], item["consumers"], item["stream"]["consumers"]) == (10, 0, [])
    assert item["readers"] == {}
    assert api.delete(f"/api/queues/%2F/{name}").status == 204


def test_empty_stream_declared_over_http(api: Api) -> None:
    name = unique("stream")
    assert api.put(f"/api/queues/%2F/{name}", {
        "durable": True, "arguments": {"x-queue-type": "stream",
                                       "x-max-length-bytes": 1_000_000}}).status == 201
    item = api.get(f"/api/queues/%2F/{name}?disable_stats=true").json
    assert item["type"] == "stream" and item["messages"] == 0
    assert item["stream"]["first_offset"] == item["stream"]["next_offset"] == 0
    assert item["stream"]["last_offset"] is None
    assert item["stream"]["retention"]["max_length_bytes"] == 1_000_000
    # not durable: refused as over AMQP (RabbitMQ's text)
    reply = api.put(f"/api/queues/%2F/{unique('stream')}", {
        "durable": False, "arguments": {"x-queue-type": "stream"}})
    assert reply.status == 400
    assert "invalid property 'non-durable'" in reply.json["reason"]
    api.delete(f"/api/queues/%2F/{name}")


def test_purge_and_get_refused(api: Api) -> None:
    name = unique("stream")
    with stream_with_reader(api.amqp_port or 0, "/", name, published=4):
        reply = api.delete(f"/api/queues/%2F/{name}/contents")
        assert reply.status == 400
        assert reply.json == {"error": "bad_request", "reason": (
            f"queue.purge not supported by stream queues queue '{name}' in vhost '/'")}
        for ackmode in ("ack_requeue_true", "reject_requeue_false"):
            reply = api.post(f"/api/queues/%2F/{name}/get",
                             {"count": 1, "ackmode": ackmode, "encoding": "auto"})
            assert reply.status == 400
            assert reply.json["reason"] == (
                f"540 basic.get not supported by stream queues queue '{name}' in vhost '/'")
        assert api.get(f"/api/queues/%2F/{name}").json["messages"] == 4
        # leveret's peek reads a stream without moving anyone's offset
        peeked = api.get(f"/api/queues/%2F/{name}/peek?count=2&offset=1").json
        assert [m["payload"] for m in peeked] == ["message-1", "message-2"]
        assert peeked[0]["properties"]["headers"] == {"x-stream-offset": 1}
    api.delete(f"/api/queues/%2F/{name}")


# What RabbitMQ 3.10.8 answers to these policy definitions (checked against it in
# test_policy_validation_differential): None is accepted (201), a text is its 400 reason
# (after "Validation failed\n\n"), 500 is its crash where leveret answers 400.
POLICY_CASES: list[tuple[dict[str, Any], str | int | None]] = [
    ({"max-age": "7D"}, None),
    ({"max-age": "10s"}, None),
    ({"max-age": "1Y"}, None),
    ({"max-age": "0D"}, '<<"0D">> is not a valid max age'),
    ({"max-age": "7d"}, '<<"7d">> is not a valid max age'),
    ({"max-age": "bogus"}, 500),
    ({"max-age": 5}, 500),
    ({"max-length-bytes": 1000}, None),
    ({"max-length-bytes": 0}, None),
    ({"max-length-bytes": "1000"}, '<<"1000">> is not a valid maximum length in bytes'),
    ({"max-length-bytes": -1}, "-1 is not a valid maximum length in bytes"),
    ({"max-length-bytes": 1.5}, "1.5 is not a valid maximum length in bytes"),
    ({"stream-max-segment-size-bytes": 1000}, None),
    ({"stream-max-segment-size-bytes": 0}, None),
    ({"stream-max-segment-size-bytes": "x"}, '<<"x">> is not a valid segment size'),
    ({"stream-max-segment-size-bytes": -5}, "-5 is not a valid segment size"),
    ({"stream-max-segment-size-bytes": 3_000_000_001},
     "3000000001 is not a valid segment size"),
]
# leveret's reason where RabbitMQ 3.10 crashes
LEVERET_FOR_500 = {"bogus": '<<"bogus">> is not a valid max age',
                   5: "5 is not a valid max age"}


@pytest.mark.parametrize(("definition", "expected"), POLICY_CASES,
                         ids=[json.dumps(d) for d, _ in POLICY_CASES])
def test_policy_validation(api: Api, definition: dict[str, Any],
                           expected: str | int | None) -> None:
    name = unique("pol")
    reply = api.put(f"/api/policies/%2F/{name}", {"pattern": f"^{name}$",
                                                  "definition": definition})
    try:
        if expected is None:
            assert reply.status == 201, reply
            return
        assert reply.status == 400, reply
        reason = LEVERET_FOR_500[definition["max-age"]] if expected == 500 else expected
        assert reply.json["reason"] == f"Validation failed\n\n{reason}\n"
    finally:
        api.delete(f"/api/policies/%2F/{name}")


def test_policy_applies_to_existing_stream(api: Api) -> None:
    name = unique("stream")
    with stream_with_reader(api.amqp_port or 0, "/", name, published=0):
        pass
    policy = unique("pol")
    # small segments: each of the next messages (about 70 bytes stored) gets one of its own
    api.ok("PUT", f"/api/policies/%2F/{policy}", {
        "pattern": f"^{name}$", "apply-to": "queues",
        "definition": {"stream-max-segment-size-bytes": 100, "max-age": "1D"}})
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", api.amqp_port, "/", pika.PlainCredentials("guest", "guest")))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(20):
            ch.basic_publish("", name, f"message-{i}".encode())
    finally:
        conn.close()
    item = api.get(f"/api/queues/%2F/{name}").json
    assert item["policy"] == policy
    assert item["effective_policy_definition"] == {"stream-max-segment-size-bytes": 100,
                                                   "max-age": "1D"}
    stream = item["stream"]
    assert stream["segments"] == 20 and item["messages"] == 20
    assert stream["retention"] == {"max_length_bytes": None, "max_age_seconds": 86400,
                                   "max_segment_size_bytes": 100}
    # entries 10-19 are a byte longer than 0-9: the newest five take 5 * (per_entry + 1)
    per_entry = stream["bytes"] // 20
    limit = 5 * per_entry + 5
    # a byte limit by policy, on the stream as it is: whole segments go, oldest first
    api.ok("PUT", f"/api/policies/%2F/{policy}", {
        "pattern": f"^{name}$", "apply-to": "queues",
        "definition": {"stream-max-segment-size-bytes": 100,
                       "max-length-bytes": limit}})
    item = api.get(f"/api/queues/%2F/{name}").json
    stream = item["stream"]
    assert item["messages"] == stream["next_offset"] - stream["first_offset"] == 5
    assert (stream["first_offset"], stream["last_offset"]) == (15, 19)
    assert stream["segments"] == 5
    assert stream["retention"]["max_length_bytes"] == limit
    # the policy gone, nothing comes back and the offsets go on
    api.ok("DELETE", f"/api/policies/%2F/{policy}")
    item = api.get(f"/api/queues/%2F/{name}").json
    assert item["stream"]["retention"]["max_length_bytes"] is None
    assert item["stream"]["first_offset"] == 15
    api.delete(f"/api/queues/%2F/{name}")


# -- against RabbitMQ ----------------------------------------------------------------------

def test_stream_queue_differential(pair: tuple[Pair, str, str], api: Api,
                                   reference: Api) -> None:
    p, vhost, _ = pair
    v = q(vhost)
    p.same("PUT", f"/api/vhosts/{v}", {})
    args = {"x-max-age": "7D", "x-max-length-bytes": 10_000_000}
    with stream_with_reader(api.amqp_port or 0, vhost, "s", **args), \
            stream_with_reader(REFERENCE_AMQP_PORT, vhost, "s", **args):
        def ready(x: Any) -> bool:
            # a consumer's channel_details is [] until its channel's statistics arrive
            return (x.get("messages") == 10 and x.get("consumers") == 1
                    and "message_stats" in x and bool(x.get("consumer_details"))
                    and all(c.get("channel_details") for c in x["consumer_details"]))

        theirs = wait_for(lambda: reference.get(f"/api/queues/{v}/s").json, ready)
        ours = api.get(f"/api/queues/{v}/s").json
        # (readers is keyed by node name: compared by its size below)
        problems = shape_problems({**ours, "readers": {}}, {**theirs, "readers": {}},
                                  STREAM_NOT_PROVIDED, STREAM_EXTRA)
        assert not problems, "\n".join(problems)
        for key in ("type", "messages", "messages_ready", "messages_unacknowledged",
                    "consumers", "arguments", "durable", "auto_delete", "exclusive",
                    "state", "policy", "effective_policy_definition"):
            assert ours[key] == theirs[key], key
        assert len(ours["readers"]) == len(theirs["readers"]) == 1
        ours_c, theirs_c = ours["consumer_details"][0], theirs["consumer_details"][0]
        for key in ("consumer_tag", "prefetch_count", "ack_required", "arguments"):
            assert ours_c[key] == theirs_c[key], key

        # purge and get: the same status and text
        p.same("DELETE", f"/api/queues/{v}/s/contents")
        p.same("POST", f"/api/queues/{v}/s/get",
               {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
        # a policy with the stream keys reaches the stream on both
        policy = {"pattern": "^s$", "apply-to": "queues",
                  "definition": {"max-age": "1D", "stream-max-segment-size-bytes": 1000000}}
        p.same("PUT", f"/api/policies/{v}/sp", policy)
        theirs = wait_for(lambda: reference.get(f"/api/queues/{v}/s").json,
                          lambda x: x.get("policy") == "sp")
        ours = api.get(f"/api/queues/{v}/s").json
        assert ours["policy"] == theirs["policy"] == "sp"
        assert ours["effective_policy_definition"] == theirs["effective_policy_definition"]
    # the definitions export of a stream, with its policy
    ours_defs, theirs_defs = p.call("GET", f"/api/definitions/{v}")
    assert ours_defs.json["queues"] == theirs_defs.json["queues"]
    assert ours_defs.json["policies"] == theirs_defs.json["policies"]


def test_policy_validation_differential(pair: tuple[Pair, str, str]) -> None:
    p, vhost, _ = pair
    v = q(vhost)
    p.same("PUT", f"/api/vhosts/{v}", {})
    for definition, expected in POLICY_CASES:
        body = {"pattern": "^s", "definition": definition, "apply-to": "queues"}
        ours = p.leveret.put(f"/api/policies/{v}/sp", body)
        theirs = p.rabbit.put(f"/api/policies/{v}/sp", body)
        if expected == 500:  # RabbitMQ 3.10 crashes; leveret says what is wrong
            assert (ours.status, theirs.status) == (400, 500), definition
        else:
            assert ours.status == theirs.status, (definition, ours, theirs)
            if ours.status == 400:
                # RabbitMQ escapes < and > in reasons as HTML; leveret does not
                assert ours.json["reason"] == html.unescape(theirs.json["reason"]), definition
        p.leveret.delete(f"/api/policies/{v}/sp")
        p.rabbit.delete(f"/api/policies/{v}/sp")
