"""Differential: every soft (channel) and hard (connection) error a client can provoke.

Each scenario provokes errors and records the close methods the server answers with:
reply code, reply text, class id and method id, and what the connection does afterwards.
"""

from __future__ import annotations

import struct

import pytest
from amqp_driver import (
    Session,
    collect_scenarios,
    raw_body,
    raw_frame,
    raw_header,
    raw_headers,
    raw_table,
)

from leveret.amqp import frames, spec

pytestmark = pytest.mark.compat


# ------------------------------------------------------------------ 404 NOT_FOUND

def scenario_passive_declare_missing(s: Session) -> None:
    c = s.connect()
    c.channel().qd(s.name("missing-q"), passive=True)
    c.channel().ed(s.name("missing-x"), passive=True)
    # a passive declare of a queue that exists answers with its counts
    ch = c.channel()
    q = s.q("present")
    ch.qd(q)
    ch.qd(q, passive=True)
    # passive ignores the other flags and arguments entirely
    ch.qd(q, passive=True, durable=True, exclusive=True, arguments={"x-max-length": 1})
    ch.ed("amq.topic", "direct", passive=True)


def scenario_missing_entities(s: Session) -> None:
    c = s.connect()
    q, x = s.q("q"), s.x("x")
    missing_q, missing_x = s.name("no-q"), s.name("no-x")
    c.channel().qd(q)
    c.channel().ed(x, "fanout")
    c.channel().bind(q, missing_x, "k")
    c.channel().bind(missing_q, x, "k")
    c.channel().call(spec.QueueUnbind(queue=q, exchange=missing_x, routing_key="k"))
    c.channel().call(spec.QueueUnbind(queue=missing_q, exchange=x, routing_key="k"))
    c.channel().call(spec.ExchangeBind(destination=x, source=missing_x, routing_key="k"))
    c.channel().call(spec.ExchangeBind(destination=missing_x, source=x, routing_key="k"))
    c.channel().consume(missing_q)
    c.channel().get(missing_q)
    c.channel().call(spec.QueuePurge(queue=missing_q))
    # deleting what does not exist is not an error in RabbitMQ 3.x
    c.channel().call(spec.QueueDelete(queue=missing_q))
    c.channel().call(spec.ExchangeDelete(exchange=missing_x))
    # unbinding a binding that does not exist is not an error either
    c.channel().call(spec.QueueUnbind(queue=q, exchange=x, routing_key="nope"))


def scenario_publish_to_missing_exchange(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    ch.publish(s.name("no-x"), "k", b"hello")
    ch.sync()
    # the channel is gone: further methods on it are a connection error (504)
    ch2 = c.channel()
    ch2.publish(s.name("no-x"), "k", b"hello", mandatory=True)
    ch2.collect(label="after publish")


# ------------------------------------------------------------------ 405 RESOURCE_LOCKED

def scenario_exclusive_queue_other_connection(s: Session) -> None:
    owner = s.connect()
    q = s.q("excl")
    owner.channel().qd(q, exclusive=True)
    other = s.connect()
    other.channel().qd(q, passive=True)
    other.channel().qd(q)
    other.channel().qd(q, exclusive=True)
    other.channel().consume(q)
    other.channel().get(q)
    other.channel().call(spec.QueuePurge(queue=q))
    other.channel().call(spec.QueueDelete(queue=q))
    other.channel().bind(q, "amq.fanout")
    # publishing to it from another connection is fine
    ch = other.channel()
    ch.publish("", q, b"from other")
    ch.sync()
    owner.channel().get(q)


# ------------------------------------------------------------------ 406 PRECONDITION_FAILED

def scenario_queue_redeclare_mismatch(s: Session) -> None:
    c = s.connect()
    q = s.q("q")
    c.channel().qd(q, arguments={"x-max-length": 10})
    c.channel().qd(q, durable=True, arguments={"x-max-length": 10})
    c.channel().qd(q, auto_delete=True, arguments={"x-max-length": 10})
    c.channel().qd(q, arguments={"x-max-length": 11})
    c.channel().qd(q, arguments={})
    c.channel().qd(q, arguments={"x-max-length": 10, "x-message-ttl": 5})
    # unknown arguments take no part in the equivalence check
    c.channel().qd(q, arguments={"x-max-length": 10, "x-whatever": "ignored"})
    # the same value with another integer width ('l', 'I', 'u'), or as a string
    for value in (b"l" + struct.pack(">q", 10), b"I" + struct.pack(">i", 10),
                  b"u" + struct.pack(">H", 10), b"S\x00\x00\x00\x0210"):
        c.channel().call_with_raw_arguments(spec.QueueDeclare(queue=q),
                                            raw_table(("x-max-length", value)))
    c.channel().qd(q, exclusive=True, arguments={"x-max-length": 10})
    c.channel().qd(q, arguments={"x-max-length": 10})


def scenario_exchange_redeclare_mismatch(s: Session) -> None:
    c = s.connect()
    x = s.x("x")
    c.channel().ed(x, "direct")
    c.channel().ed(x, "fanout")
    c.channel().ed(x, "direct", durable=True)
    c.channel().ed(x, "direct", auto_delete=True)
    c.channel().ed(x, "direct", internal=True)
    c.channel().ed(x, "direct", arguments={"alternate-exchange": "ae"})
    c.channel().ed(x, "direct", arguments={"x-whatever": 1})
    c.channel().ed(x, "direct")
    # the predeclared exchanges are durable
    c.channel().ed("amq.direct", "direct")
    c.channel().ed("amq.direct", "direct", durable=True)
    c.channel().ed("amq.direct", "topic", durable=True)


def scenario_invalid_queue_arguments(s: Session) -> None:
    c = s.connect()
    for i, args in enumerate([
        {"x-max-length": "ten"},
        {"x-max-length": -1},
        {"x-max-length-bytes": -1},
        {"x-message-ttl": -1},
        {"x-message-ttl": "1000"},
        {"x-expires": 0},
        {"x-expires": -5},
        {"x-max-priority": 256},
        {"x-max-priority": -1},
        {"x-overflow": "explode"},
        {"x-dead-letter-exchange": 5},
        {"x-dead-letter-routing-key": "k"},
        {"x-queue-mode": "sideways"},
        {"x-single-active-consumer": "yes"},
        {"x-queue-type": "wibble"},
        {"x-max-length": 1.5},
    ]):
        c.channel().qd(s.q(f"bad{i}"), arguments=args)


def scenario_delivery_tag_errors(s: Session) -> None:
    c = s.connect()
    q = s.q("q")
    setup = c.channel()
    setup.qd(q)
    for i in range(3):
        setup.publish("", q, b"m%d" % i)
    setup.sync()
    ch = c.channel()
    ch.ack(1)
    ch.sync()
    ch = c.channel()
    ch.get(q, no_ack=False)
    ch.ack(1)
    ch.ack(1)  # twice
    ch.sync()
    ch = c.channel()
    ch.get(q, no_ack=False)
    ch.reject(2)
    ch.sync()
    ch = c.channel()
    ch.get(q, no_ack=False)
    ch.nack(5, multiple=True)
    ch.sync()
    ch = c.channel()
    ch.get(q, no_ack=True)
    ch.ack(1)  # no-ack deliveries have no tag to acknowledge
    ch.sync()
    ch = c.channel()
    ch.ack(0, multiple=True)  # "everything so far" with nothing outstanding: fine
    ch.ack(0)  # tag 0 without multiple is unknown
    ch.sync()


def scenario_delete_if_unused_if_empty(s: Session) -> None:
    c = s.connect()
    q, x = s.q("q"), s.x("x")
    ch = c.channel()
    ch.qd(q)
    ch.ed(x, "fanout")
    ch.bind(q, x)
    ch.publish("", q, b"one")
    ch.sync()
    c.channel().call(spec.QueueDelete(queue=q, if_empty=True))
    c.channel().call(spec.ExchangeDelete(exchange=x, if_unused=True))
    ch = c.channel()
    ch.consume(q, "c1", no_ack=False)
    ch.collect(1)
    c.channel().call(spec.QueueDelete(queue=q, if_unused=True))
    ch.call(spec.BasicCancel(consumer_tag="c1"))
    c.channel().call(spec.QueueDelete(queue=q, if_unused=True, if_empty=True))
    c.channel().call(spec.QueueDelete(queue=q, if_unused=True))
    c.channel().call(spec.ExchangeDelete(exchange=x, if_unused=True))


def scenario_publish_user_id(s: Session) -> None:
    c = s.connect()
    q = s.q("q")
    ch = c.channel()
    ch.qd(q)
    ch.publish("", q, b"mine", spec.Properties(user_id=c.url.user))
    ch.get(q)
    ch.publish("", q, b"theirs", spec.Properties(user_id="not-" + c.url.user))
    ch.sync()
    c.channel().get(q)


def scenario_tx_and_confirm_mode_errors(s: Session) -> None:
    c = s.connect()
    c.channel().call(spec.TxCommit())
    c.channel().call(spec.TxRollback())
    ch = c.channel()
    ch.call(spec.TxSelect())
    ch.call(spec.TxSelect())  # idempotent
    ch.call(spec.ConfirmSelect())
    ch = c.channel()
    ch.call(spec.ConfirmSelect())
    ch.call(spec.ConfirmSelect())  # idempotent
    ch.call(spec.TxSelect())


# ------------------------------------------------------------------ 403 ACCESS_REFUSED

def scenario_reserved_names(s: Session) -> None:
    c = s.connect()
    c.channel().ed("amq.compat-" + s.run_id, "direct")
    c.channel().qd("amq.compat-" + s.run_id)
    c.channel().ed("amq.compat-" + s.run_id, "direct", passive=True)
    c.channel().qd("amq.compat-" + s.run_id, passive=True)
    c.channel().call(spec.ExchangeDelete(exchange="amq.direct"))
    c.channel().call(spec.ExchangeDelete(exchange=""))
    c.channel().ed("", "direct")
    c.channel().ed("", "direct", passive=True)
    c.channel().ed("amq.default", "direct", passive=True)


def scenario_default_exchange_restrictions(s: Session) -> None:
    c = s.connect()
    q = s.q("q")
    c.channel().qd(q)
    c.channel().bind(q, "", q)
    c.channel().bind(q, "", "other")
    c.channel().call(spec.QueueUnbind(queue=q, exchange="", routing_key=q))
    c.channel().call(spec.ExchangeBind(destination="amq.direct", source="", routing_key="k"))
    c.channel().call(spec.ExchangeBind(destination="", source="amq.direct", routing_key="k"))
    ch = c.channel()
    ch.publish("amq.default", q, b"via amq.default")
    ch.sync()
    c.channel().get(q)


def scenario_internal_exchange(s: Session) -> None:
    c = s.connect()
    x, y, q = s.x("internal"), s.x("front"), s.q("q")
    ch = c.channel()
    ch.ed(x, "fanout", internal=True)
    ch.ed(y, "fanout")
    ch.qd(q)
    ch.bind(q, x)
    ch.call(spec.ExchangeBind(destination=x, source=y))
    # reachable through an exchange-to-exchange binding
    ch.publish(y, "", b"through front")
    ch.get(q)
    ch.publish(x, "", b"direct to internal")
    ch.sync()


def scenario_exclusive_consumer(s: Session) -> None:
    c = s.connect()
    q = s.q("q")
    ch = c.channel()
    ch.qd(q)
    ch.consume(q, "first", exclusive=True)
    c.channel().consume(q, "second")
    ch.call(spec.BasicCancel(consumer_tag="first"))
    ch.consume(q, "third")
    c.channel().consume(q, "fourth", exclusive=True)


# ------------------------------------------------------------------ 530 NOT_ALLOWED

def scenario_duplicate_consumer_tag(s: Session) -> None:
    c = s.connect()
    q = s.q("q")
    ch = c.channel()
    ch.qd(q)
    ch.consume(q, "tag")
    ch.consume(q, "tag")
    c.collect(label="after")


def scenario_duplicate_consumer_tag_other_channel(s: Session) -> None:
    c = s.connect()
    q = s.q("q")
    ch = c.channel()
    ch.qd(q)
    ch.consume(q, "tag")
    c.channel().consume(q, "tag")  # tags are per channel: fine elsewhere
    ch.call(spec.BasicCancel(consumer_tag="tag"))
    ch.consume(q, "tag")  # reusable after cancel
    ch.call(spec.BasicCancel(consumer_tag="never-existed"))


def scenario_unknown_vhost(s: Session) -> None:
    s.connect(vhost="compat-no-such-vhost")
    s.connect(vhost="")


def scenario_channel_max(s: Session) -> None:
    c = s.connect(channel_max=2)
    c.channel(1)
    c.channel(2)
    c.channel(3)
    c.collect(label="after")


# ------------------------------------------------------------------ 503/504/505/501 framing

def scenario_channel_open_twice(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    ch.call(spec.ChannelOpen())
    c.collect(label="after")


def scenario_method_on_unopened_channel(s: Session) -> None:
    c = s.connect()
    ch = c.channel(5, open=False)
    ch.call(spec.QueueDeclare(queue=s.q("q")))
    c.collect(label="after")


def scenario_publish_on_unopened_channel(s: Session) -> None:
    c = s.connect()
    ch = c.channel(3, open=False)
    ch.publish("", "nowhere", b"x")
    c.wait_close()


def scenario_close_on_unopened_channel(s: Session) -> None:
    c = s.connect()
    c.send_method(7, spec.ChannelCloseOk())
    c.wait_close()
    c = s.connect()
    c.channel(8, open=False).call(spec.ChannelClose(200, "bye", 0, 0))
    c.collect(label="after")


def scenario_channel_method_on_channel_zero(s: Session) -> None:
    c = s.connect()
    c.channels[0].call(spec.QueueDeclare(queue=s.q("q")))
    c.collect(label="after")


def scenario_connection_method_on_channel(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    ch.call(spec.ConnectionTuneOk(channel_max=10, frame_max=131072, heartbeat=0))
    c.collect(label="after")


def scenario_body_without_header(s: Session) -> None:
    c = s.connect()
    c.channel()
    c.send_raw(raw_body(1, b"abc"))
    c.wait_close()


def scenario_header_without_method(s: Session) -> None:
    c = s.connect()
    c.channel()
    c.send_raw(raw_header(1, 3) + raw_body(1, b"abc"))
    c.wait_close()


def scenario_method_instead_of_header(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    ch.send(spec.BasicPublish(exchange="", routing_key="x"))
    ch.send(spec.QueueDeclare(queue=s.q("q")))
    c.wait_close()


def scenario_method_instead_of_body(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    ch.send(spec.BasicPublish(exchange="", routing_key="x"))
    c.send_raw(raw_header(1, 10))
    ch.send(spec.QueueDeclare(queue=s.q("q")))
    c.wait_close()


def scenario_body_longer_than_declared(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.send(spec.BasicPublish(exchange="", routing_key=q))
    c.send_raw(raw_header(1, 2) + raw_body(1, b"abcde"))
    ch.sync()
    ch.get(q)
    c.collect(label="after")


def scenario_content_header_wrong_class(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.send(spec.BasicPublish(exchange="", routing_key=q))
    c.send_raw(raw_header(1, 3, class_id=50) + raw_body(1, b"abc"))
    c.wait_close()


def scenario_bad_frame_end(s: Session) -> None:
    c = s.connect()
    c.channel()
    data = frames.encode_method(1, spec.QueueDeclare(queue="compat-bad-frame-end"))
    c.send_raw(data[:-1] + b"\x00")
    c.wait_close()


def scenario_unknown_frame_type(s: Session) -> None:
    c = s.connect()
    c.channel()
    c.send_raw(raw_frame(9, 1, b"hi"))
    c.wait_close()


def scenario_frame_too_large(s: Session) -> None:
    c = s.connect(frame_max=4096)
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.publish("", q, b"x" * 5000, frame_max=8192)  # one 5008-byte body frame > 4096
    c.wait_close()


def scenario_heartbeat_on_channel(s: Session) -> None:
    c = s.connect()
    c.channel()
    c.send_raw(b"\x08\x00\x01\x00\x00\x00\x00\xce")
    c.wait_close()


def scenario_unknown_method(s: Session) -> None:
    c = s.connect()
    c.channel()
    c.send_raw(raw_frame(frames.METHOD, 1, struct.pack(">HH", 60, 999)))
    c.wait_gone()  # RabbitMQ's reader crashes: {unknown_method_id,{60,999}}, no close method


def scenario_unknown_class(s: Session) -> None:
    c = s.connect()
    c.channel()
    c.send_raw(raw_frame(frames.METHOD, 1, struct.pack(">HH", 77, 10)))
    c.wait_gone()  # RabbitMQ's reader crashes: {unknown_method_id,{77,10}}, no close method


def scenario_truncated_method(s: Session) -> None:
    c = s.connect()
    c.channel()
    payload = spec.QueueDeclare(queue="compat-truncated").encode()[:8]
    c.send_raw(raw_frame(frames.METHOD, 1, payload))
    c.wait_close()


def scenario_bad_field_table(s: Session) -> None:
    c = s.connect()
    c.channel()
    good = spec.QueueDeclare(queue=s.q("q"), arguments={"a": 1}).encode()
    bad = good.replace(b"\x01ab", b"\x01aZ")  # unknown field type 'Z'
    assert bad != good
    c.send_raw(raw_frame(frames.METHOD, 1, bad))
    c.wait_gone()  # RabbitMQ's reader crashes on the unknown type tag, no close method


def scenario_malformed_content_properties(s: Session) -> None:
    """RabbitMQ decodes the properties of every publish; a bad header table ends the
    connection (RabbitMQ: connection.close 541 INTERNAL_ERROR, its channel crashed)."""
    c = s.connect()
    ch = c.channel()
    ch.publish("", "nowhere", b"x", raw_headers(("z", b"Z\x00")))
    c.wait_gone()
    c = s.connect()
    ch = c.channel()
    ch.publish("", "nowhere", b"x", b"\x20\x00\x00\x00\x00\x09\x01a")  # table past its end
    c.wait_gone()


def scenario_server_method_from_client(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    ch.send(spec.BasicDeliver(consumer_tag="x", delivery_tag=1, exchange="", routing_key="q"))
    c.send_raw(raw_header(1, 1) + raw_body(1, b"x"))
    c.wait_close()


# ------------------------------------------------------------------ 540 NOT_IMPLEMENTED

def scenario_qos_prefetch_size(s: Session) -> None:
    c = s.connect()
    c.channel().call(spec.BasicQos(prefetch_size=1, prefetch_count=0))
    c.collect(label="after")


def scenario_publish_immediate(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.consume(q, "c", no_ack=True)  # even with a consumer ready to take it
    ch.publish("", q, b"now", immediate=True)
    ch.sync()
    c.collect(label="after")


def scenario_channel_flow(s: Session) -> None:
    c = s.connect()
    c.channel().call(spec.ChannelFlow(active=True))
    c.channel().call(spec.ChannelFlow(active=False))
    c.collect(label="after")


def scenario_recover_variants(s: Session) -> None:
    c = s.connect()
    c.channel().call(spec.BasicRecover(requeue=True))
    c.channel().call(spec.BasicRecover(requeue=False))
    c.collect(label="after")
    c = s.connect()
    ch = c.channel()
    ch.send(spec.BasicRecoverAsync(requeue=True))
    ch.sync()
    c.collect(label="after")
    c = s.connect()
    ch = c.channel()
    ch.send(spec.BasicRecoverAsync(requeue=False))
    ch.sync()
    c.collect(label="after")


def scenario_access_request(s: Session) -> None:
    c = s.connect()
    c.channel().call(spec.AccessRequest(realm="/data", active=True, read=True))
    c.collect(label="after")


def scenario_unknown_exchange_type(s: Session) -> None:
    c = s.connect()
    c.channel().ed(s.x("x"), "no-such-type")
    c.collect(label="after")


def scenario_headers_binding_bad_x_match(s: Session) -> None:
    c = s.connect()
    x, q = s.x("h"), s.q("q")
    ch = c.channel()
    ch.ed(x, "headers")
    ch.qd(q)
    ch.bind(q, x, "", {"x-match": "most", "a": 1})
    c.channel().bind(q, x, "", {"x-match": 1})


# ------------------------------------------------------------------ login

def scenario_login_refused(s: Session) -> None:
    c = s.connect(handshake=False)
    c.send_raw(frames.PROTOCOL_HEADER)
    c.channels[0].wait_for("connection.start")  # not recorded: see test_compat_lifetimes
    c.send_method(0, spec.ConnectionStartOk(client_properties={
        "capabilities": {"authentication_failure_close": True}},
        mechanism="PLAIN", response=b"\0guest\0wrong-password", locale="en_US"))
    c.wait_close()


def scenario_unknown_mechanism(s: Session) -> None:
    c = s.connect(handshake=False)
    c.send_raw(frames.PROTOCOL_HEADER)
    c.channels[0].wait_for("connection.start")  # not recorded: see test_compat_lifetimes
    c.send_method(0, spec.ConnectionStartOk(mechanism="CRAM-MD5", response=b"x"))
    c.wait_gone()


def scenario_protocol_header_mismatch(s: Session) -> None:
    for header in (b"AMQP\x00\x00\x08\x00", b"AMQP\x01\x01\x00\x0a", b"HTTP/1.1",
                   b"AMQP\x00\x00\x09\x02"):
        c = s.connect(handshake=False)
        c.send_raw(header)
        s.note(f"reply to {header!r}", c.read_raw())


SCENARIOS = collect_scenarios(globals())


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_matches_rabbitmq(scenario, differential):
    differential(scenario)
