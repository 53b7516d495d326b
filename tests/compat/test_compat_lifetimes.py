"""Differential: the connection handshake, and how long things live. Auto-delete queues and
exchanges, exclusive queues, server-named queues and the "" shortcut, queue expiry,
direct reply-to.
"""

from __future__ import annotations

import time

import pytest
from amqp_driver import Session, collect_scenarios

from leveret.amqp import spec

pytestmark = pytest.mark.compat


# ------------------------------------------------------------------ handshake

def scenario_handshake(s: Session) -> None:
    """connection.start (capabilities, mechanisms, locales; not product/version), tune, open-ok."""
    c = s.connect(record_handshake=True)
    c.channel()
    c.close()
    # the client may ask for less; the server then holds the client to it
    c = s.connect(record_handshake=True, frame_max=4096, channel_max=1)
    c.channel(1)
    c.channel(2)
    c.collect(label="after opening channel 2 of 1")


def scenario_tune_ok_out_of_bounds(s: Session) -> None:
    # RabbitMQ closes the socket (no connection.close) about 3 s later: a slow scenario
    for tune_ok in ({"frame_max": 1 << 20},  # more than the server offered
                    {"frame_max": 1024},  # less than the protocol minimum of 4096
                    {"channel_max": 0}):  # "no limit": more than the server offered
        c = s.connect(tune_ok=tune_ok)
        s.note("tune-ok", tune_ok)
        if c.dead is None:
            c.channel()
        c.collect(label="after open")


def scenario_client_close_and_reuse_channel_number(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    ch.close()
    ch = c.channel(1)  # a closed channel number can be opened again
    ch.qd(s.q("q"))
    c.channel(65535)
    c.close()


# ------------------------------------------------------------------ auto-delete

def scenario_auto_delete_queue(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("ad")
    ch.qd(q, auto_delete=True)
    ch.qd(q, passive=True)  # never consumed from: it stays
    look = c.channel()
    ch.consume(q, "c1")
    ch.consume(q, "c2")
    ch.call(spec.BasicCancel(consumer_tag="c1"))
    look.qd(q, passive=True)  # one consumer left
    ch.call(spec.BasicCancel(consumer_tag="c2"))
    look.qd(q, passive=True)  # last consumer gone: deleted
    # the same through a channel close
    c.channel().qd(q, auto_delete=True)
    ch3 = c.channel()
    ch3.consume(q, "c3")
    ch3.close()
    c.channel().qd(q, passive=True)


def scenario_auto_delete_queue_on_connection_close(s: Session) -> None:
    c1 = s.connect()
    q = s.q("ad")
    ch = c1.channel()
    ch.qd(q, auto_delete=True)
    ch.consume(q, "c")
    c1.close()
    c2 = s.connect()
    c2.channel().qd(q, passive=True)


def scenario_auto_delete_exchange(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    x, y, q = s.x("ad"), s.x("dest"), s.q("q")
    ch.ed(x, "fanout", auto_delete=True)
    ch.ed(x, "fanout", passive=True)  # never bound: it stays
    ch.qd(q)
    ch.bind(q, x)
    ch.bind(q, x, "second")
    ch.call(spec.QueueUnbind(queue=q, exchange=x))
    ch.ed(x, "fanout", passive=True)  # one binding left
    ch.call(spec.QueueUnbind(queue=q, exchange=x, routing_key="second"))
    c.channel().ed(x, "fanout", passive=True)  # last binding gone: deleted
    # exchange-to-exchange bindings count too, as source but not as destination
    ch = c.channel()
    ch.ed(x, "fanout", auto_delete=True)
    ch.ed(y, "fanout")
    ch.call(spec.ExchangeBind(destination=x, source=y))
    ch.call(spec.ExchangeUnbind(destination=x, source=y))
    ch.ed(x, "fanout", passive=True)
    ch.call(spec.ExchangeBind(destination=y, source=x))
    ch.call(spec.ExchangeUnbind(destination=y, source=x))
    c.channel().ed(x, "fanout", passive=True)
    # deleting the bound queue removes the last binding, and so the exchange
    ch = c.channel()
    ch.ed(x, "fanout", auto_delete=True)
    ch.bind(q, x)
    ch.call(spec.QueueDelete(queue=q))
    c.channel().ed(x, "fanout", passive=True)


# ------------------------------------------------------------------ exclusive queues

def scenario_exclusive_queue_lifetime(s: Session) -> None:
    owner = s.connect()
    q = s.q("excl")
    och = owner.channel()
    och.qd(q, exclusive=True)
    och.publish("", q, b"kept until the owner goes")
    och.sync()
    och.close()  # closing the declaring channel does not delete it
    owner.channel().qd(q, passive=True)
    other = s.connect()
    other.channel().qd(q, passive=True)
    owner.close()
    other.channel().qd(q, passive=True)  # gone with its connection
    other.channel().qd(q, exclusive=True)  # the name is free again


def scenario_exclusive_queue_with_auto_delete_and_consumers(s: Session) -> None:
    c = s.connect()
    q = s.q("excl-ad")
    ch = c.channel()
    ch.qd(q, exclusive=True, auto_delete=True)
    ch.consume(q, "c")
    ch.call(spec.BasicCancel(consumer_tag="c"))
    c.channel().qd(q, passive=True)


# ------------------------------------------------------------------ server-named queues

def scenario_server_named_queues(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    first = ch.qd("", exclusive=True)
    ch.qd("", exclusive=True)  # a second, different name
    # "" means "the last queue declared on this channel" in bind, consume, get, purge, delete
    ch.bind("", "amq.fanout")
    ch.publish("amq.fanout", "", b"to the last declared")
    ch.sync()
    ch.get("")
    ch.publish("amq.fanout", "", b"again")
    ch.sync()
    ch.call(spec.QueuePurge(queue=""))
    ch.consume("", "c")
    ch.call(spec.BasicCancel(consumer_tag="c"))
    ch.call(spec.QueueUnbind(queue="", exchange="amq.fanout"))
    ch.call(spec.QueueDelete(queue=""))
    ch.qd(first[2]["queue"], passive=True)
    # "" after the last declared queue was deleted
    ch.get("")
    # on a channel that never declared a queue
    c.channel().get("")
    c.channel().bind("", "amq.fanout")
    c.channel().consume("")
    c.channel().call(spec.QueueDelete(queue=""))
    c.channel().call(spec.QueuePurge(queue=""))
    c.channel().qd("", passive=True)


def scenario_server_named_queue_defaults(s: Session) -> None:
    """A server-named queue that is not declared exclusive is shared and stays."""
    c = s.connect()
    got = c.channel().qd("")
    name = got[2]["queue"] if got[1] == "queue.declare-ok" else None
    c.close()
    if name:
        s.queues.add(name)
        c2 = s.connect()
        c2.channel().qd(name, passive=True)


def scenario_server_named_consumer_tags(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.consume(q)
    ch.consume(q)
    ch.consume(q, "mine")
    ch.publish("", q, b"x")
    ch.collect(1, label="delivery to one of them", summary=lambda obs: [o[1] for o in obs])


# ------------------------------------------------------------------ queue expiry (x-expires)

def scenario_queue_expires(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    idle, used = s.q("idle"), s.q("used")
    ch.qd(idle, arguments={"x-expires": 200})
    ch.qd(used, arguments={"x-expires": 200})
    ch.consume(used, "c")  # a consumer keeps it alive
    time.sleep(0.6)
    c.channel().qd(idle, passive=True)
    c.channel().qd(used, passive=True)


# ------------------------------------------------------------------ direct reply-to

REPLY_TO = "amq.rabbitmq.reply-to"


def scenario_direct_reply_to(s: Session) -> None:
    c = s.connect()
    client = c.channel()
    server = c.channel()
    q = s.q("rpc")
    server.qd(q)
    client.consume(REPLY_TO, "replies", no_ack=True)
    client.publish("", q, b"request", spec.Properties(reply_to=REPLY_TO, correlation_id="1"))
    client.sync()
    got = server.get(q)
    reply_to = got[3].get("reply_to", "") if got[1] == "basic.get-ok" else ""
    server.publish("", reply_to, b"response", spec.Properties(correlation_id="1"))
    client.collect(1, label="the reply")
    # publishing to a reply-to name that does not exist is silently dropped
    server.publish("", REPLY_TO + ".bm90LWEtcmVhbC1uYW1l", b"lost", mandatory=True)
    server.sync()
    server.collect(label="return for a dead reply-to name")
    client.qd(REPLY_TO, passive=True)


def scenario_direct_reply_to_errors(s: Session) -> None:
    c = s.connect()
    c.channel().consume(REPLY_TO, "acking", no_ack=False)
    ch = c.channel()
    ch.publish("", s.name("nowhere"), b"x", spec.Properties(reply_to=REPLY_TO))
    ch.sync()
    ch = c.channel()
    ch.consume(REPLY_TO, "r1", no_ack=True)
    ch.consume(REPLY_TO, "r2", no_ack=True)
    ch = c.channel()
    ch.consume(REPLY_TO, "r", no_ack=True)
    ch.call(spec.BasicCancel(consumer_tag="r"))
    ch.publish("", s.name("nowhere"), b"x", spec.Properties(reply_to=REPLY_TO))
    ch.sync()
    c.channel().qd(REPLY_TO)
    c.channel().get(REPLY_TO)


SCENARIOS = collect_scenarios(globals())


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_matches_rabbitmq(scenario, differential):
    differential(scenario)
