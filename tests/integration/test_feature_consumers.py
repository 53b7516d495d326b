"""Single active consumer (x-single-active-consumer) and consumer priorities (x-priority on
basic.consume), as RabbitMQ 3.10 does them.

Consumer timeouts: RabbitMQ 3.10 has only the node-wide ``consumer_timeout`` setting; the
per-queue ``x-consumer-timeout`` argument (and policy) came with 3.11.15/3.12
(rabbitmq-server#5437), and 3.10.8 accepts the argument and ignores it. There is nothing
per-queue to pin against 3.10, so there are no consumer-timeout tests here.

Pinned behaviour (checked against RabbitMQ 3.10.8):

single active consumer
* the first consumer registered is the active one, whatever the x-priority of later ones;
  the others get nothing (even when the active one is blocked by its prefetch);
* declare-ok's consumer_count counts every consumer, active or waiting;
* when the active consumer goes (basic.cancel, channel close, connection close), the
  waiting consumer with the highest x-priority takes over, the earliest registered among
  equals; a consumer registered again joins at the back. Messages the old one had unacked
  are requeued (on close) and go to the new one first, redelivered;
* basic.get still works; an exclusive basic.consume when consumers exist is 403;
* (not tested: RabbitMQ 3.10.8 crashes the queue process when the active consumer is
  cancelled while it holds unacked messages; the queue restarts empty.)

consumer priorities
* a consumer with a higher x-priority gets every message while it has prefetch room; only
  then do lower ones get any; equal priorities share round-robin; negative priorities sort
  below the default 0; any integer type is accepted;
* a non-integer x-priority: 406 "invalid arg 'x-priority' for queue ...: "expected integer,
  got <type>"" closing the channel on basic.consume.
"""

from __future__ import annotations

import decimal

import pika
import pytest

from ._features import Collector, counts, get_one, ready, settle

SAC = {"x-single-active-consumer": True}


@pytest.fixture
def ch(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def _fill(ch, q: str, bodies) -> None:
    for body in bodies:
        ch.basic_publish("", q, body)


# -- single active consumer ------------------------------------------------------------------------


def test_only_the_first_consumer_gets_messages(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    consumers = [Collector(conn, conn.channel(), q, auto_ack=True) for _ in range(3)]
    _fill(ch, q, [b"m%d" % i for i in range(5)])
    assert consumers[0].wait(5) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    settle(conn)
    assert [c.bodies for c in consumers[1:]] == [[], []]


def test_declare_ok_counts_every_consumer(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    for _ in range(3):
        Collector(conn, conn.channel(), q, auto_ack=True)
    assert counts(conn, q) == (0, 3)
    ok = conn.channel().queue_declare(q, arguments=SAC).method
    assert ok.consumer_count == 3


def test_prefetch_of_the_active_consumer_does_not_spill_over(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    active_ch = conn.channel()
    active_ch.basic_qos(prefetch_count=1)
    active = Collector(conn, active_ch, q)
    waiting = Collector(conn, conn.channel(), q)
    _fill(ch, q, [b"a", b"b", b"c"])
    assert active.wait(1) == [b"a"]
    settle(conn)
    assert waiting.bodies == []
    assert counts(conn, q) == (2, 2)
    active.ack_last()
    assert active.wait(2) == [b"a", b"b"]


def test_failover_order_on_cancel_and_close(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    chans = [conn.channel() for _ in range(4)]
    cs = [Collector(conn, c, q, auto_ack=True, consumer_tag=f"C{i}") for i, c in enumerate(chans)]
    _fill(ch, q, [b"1"])
    assert cs[0].wait(1) == [b"1"]
    cs[0].cancel()
    _fill(ch, q, [b"2"])
    assert cs[1].wait(1) == [b"2"]
    chans[1].close()
    _fill(ch, q, [b"3"])
    assert cs[2].wait(1) == [b"3"]
    again = Collector(conn, chans[0], q, auto_ack=True, consumer_tag="C0-again")
    cs[2].cancel()
    _fill(ch, q, [b"4"])
    assert cs[3].wait(1) == [b"4"]  # C0-again registered last: it waits behind C3
    settle(conn)
    assert again.bodies == []
    assert [c.bodies for c in cs] == [[b"1"], [b"2"], [b"3"], [b"4"]]
    assert counts(conn, q) == (0, 2)


def test_unacked_messages_go_to_the_next_consumer_when_the_channel_closes(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    first_ch = conn.channel()
    first_ch.basic_qos(prefetch_count=2)
    first = Collector(conn, first_ch, q)
    second = Collector(conn, conn.channel(), q)
    _fill(ch, q, [b"m0", b"m1", b"m2", b"m3"])
    assert first.wait(2) == [b"m0", b"m1"]
    first_ch.close()
    assert second.wait(4) == [b"m0", b"m1", b"m2", b"m3"]
    assert [m.redelivered for m, _, _ in second.deliveries] == [True, True, False, False]


def test_failover_when_the_connection_closes(ch, conn, connect, names):
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    other = connect()
    first = Collector(other, other.channel(), q)
    second = Collector(conn, conn.channel(), q, auto_ack=True)
    _fill(ch, q, [b"x"])
    first.wait(1)
    other.close()
    assert second.wait(1) == [b"x"]
    assert second.deliveries[0][0].redelivered is True


def test_first_choice_ignores_priority_failover_uses_it(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    a_ch = conn.channel()
    a = Collector(conn, a_ch, q, auto_ack=True)
    b = Collector(conn, conn.channel(), q, auto_ack=True)
    c = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": 5})
    _fill(ch, q, [b"one"])
    assert a.wait(1) == [b"one"]
    a_ch.close()
    _fill(ch, q, [b"two"])
    assert c.wait(1) == [b"two"]
    settle(conn)
    assert b.bodies == []


def test_basic_get_works_on_a_single_active_consumer_queue(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    active_ch = conn.channel()
    active_ch.basic_qos(prefetch_count=1)
    active = Collector(conn, active_ch, q)
    _fill(ch, q, [b"a", b"b", b"c"])
    active.wait(1)
    method, _props, body = get_one(ch, q)
    assert (body, method.message_count) == (b"b", 1)


def test_exclusive_consume_is_refused_when_consumers_exist(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments=SAC)
    Collector(conn, conn.channel(), q, auto_ack=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        Collector(conn, conn.channel(), q, auto_ack=True, exclusive=True)
    assert info.value.reply_code == 403
    assert info.value.reply_text == f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"


def test_without_the_argument_consumers_share(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-single-active-consumer": False})
    a = Collector(conn, conn.channel(), q, auto_ack=True)
    b = Collector(conn, conn.channel(), q, auto_ack=True)
    _fill(ch, q, [b"1", b"2", b"3", b"4"])
    settle(conn, 0.2)
    assert sorted(a.bodies + b.bodies) == [b"1", b"2", b"3", b"4"]
    assert a.bodies and b.bodies


@pytest.mark.parametrize(("value", "type_name"), [("yes", "longstr"), (1, "signedint")])
def test_single_active_consumer_must_be_a_boolean(conn, names, value, type_name):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-single-active-consumer": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{q}' in "
        f"vhost '/': {{unacceptable_type,{type_name}}}"
    )


def test_single_active_consumer_is_part_of_equivalence(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments=SAC)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-single-active-consumer": False})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue '{q}' in "
        "vhost '/': received 'false' but current is 'true'"
    )


# -- consumer priorities -------------------------------------------------------------------------


def test_the_highest_priority_consumer_gets_everything(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    lo = Collector(conn, conn.channel(), q, auto_ack=True)
    hi = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": 10})
    mid = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": 5})
    _fill(ch, q, [b"p%d" % i for i in range(5)])
    assert hi.wait(5) == [b"p0", b"p1", b"p2", b"p3", b"p4"]
    settle(conn)
    assert (lo.bodies, mid.bodies) == ([], [])


def test_lower_priorities_get_what_a_full_consumer_cannot_take(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    lo = Collector(conn, conn.channel(), q, auto_ack=True)
    hi_ch = conn.channel()
    hi_ch.basic_qos(prefetch_count=2)
    hi = Collector(conn, hi_ch, q, arguments={"x-priority": 10})
    mid = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": 5})
    _fill(ch, q, [b"p%d" % i for i in range(5)])
    assert hi.wait(2) == [b"p0", b"p1"]
    assert mid.wait(3) == [b"p2", b"p3", b"p4"]
    settle(conn)
    assert lo.bodies == []
    # room again: the high-priority consumer is first in line again
    hi.ack_last()
    hi_ch.basic_ack(hi.deliveries[0][0].delivery_tag)
    _fill(ch, q, [b"p5"])
    assert hi.wait(3)[-1] == b"p5"


def test_equal_priorities_share_round_robin(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    x1 = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": 3})
    x2 = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": 3})
    low = Collector(conn, conn.channel(), q, auto_ack=True)
    _fill(ch, q, [b"r0", b"r1", b"r2", b"r3"])
    settle(conn, 0.2)
    assert (x1.bodies, x2.bodies, low.bodies) == ([b"r0", b"r2"], [b"r1", b"r3"], [])


def test_negative_priority_is_below_the_default(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    negative = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": -5})
    default = Collector(conn, conn.channel(), q, auto_ack=True)
    _fill(ch, q, [b"n"])
    assert default.wait(1) == [b"n"]
    settle(conn)
    assert negative.bodies == []


def test_cancelling_the_high_priority_consumer_hands_over(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    low = Collector(conn, conn.channel(), q, auto_ack=True)
    high = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": 1})
    _fill(ch, q, [b"a"])
    assert high.wait(1) == [b"a"]
    high.cancel()
    _fill(ch, q, [b"b"])
    assert low.wait(1) == [b"b"]


def test_priority_applies_to_messages_already_waiting(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    _fill(ch, q, [b"w1", b"w2"])
    low = Collector(conn, conn.channel(), q, auto_ack=True)
    low.wait(2)  # the only consumer takes what is there
    high = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": 9})
    _fill(ch, q, [b"w3"])
    assert high.wait(1) == [b"w3"]
    assert ready(conn, q) == 0


def test_a_long_priority_is_accepted(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    c = Collector(conn, conn.channel(), q, auto_ack=True, arguments={"x-priority": 2**40})
    _fill(ch, q, [b"x"])
    assert c.wait(1) == [b"x"]


@pytest.mark.parametrize(
    ("value", "type_name"),
    [("high", "longstr"), (decimal.Decimal("1.5"), "decimal"), (True, "bool")],
)
def test_x_priority_must_be_an_integer(conn, names, value, type_name):
    q = names.queue()
    conn.channel().queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        Collector(conn, conn.channel(), q, arguments={"x-priority": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost '/': "
        f'"expected integer, got {type_name}"'
    )
