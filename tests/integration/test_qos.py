"""basic.qos: prefetch per consumer (global=false) and per channel (global=true), as RabbitMQ
implements them (per_consumer_qos semantics)."""

from __future__ import annotations

import time

import pika
import pytest
from pamqp import commands as C

N_MESSAGES = 20


class Consumers:
    """Manual-ack consumers on one pika channel, recording delivery tags per consumer."""

    def __init__(self, conn, ch, queue):
        self.conn, self.ch, self.queue = conn, ch, queue
        self.got: dict[str, list[int]] = {}

    def add(self, tag: str, auto_ack: bool = False) -> None:
        self.got[tag] = []
        self.ch.basic_consume(
            self.queue,
            lambda _c, m, _p, _b: self.got[tag].append(m.delivery_tag),
            consumer_tag=tag,
            auto_ack=auto_ack,
        )

    def total(self) -> int:
        return sum(len(v) for v in self.got.values())

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.got.items()}

    def settle(
        self, expected_total: int, quiet: float = 0.3, timeout: float = 5.0
    ) -> dict[str, int]:
        """Wait for ``expected_total`` deliveries, then a little longer to see that no more come."""
        deadline = time.monotonic() + timeout
        while self.total() < expected_total and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.05)
        self.conn.process_data_events(time_limit=quiet)
        return self.counts()


@pytest.fixture
def setup(connect):
    """A fresh connection and channel with an exclusive queue; returns (ch, consumers, publish)."""
    conn = connect()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    consumers = Consumers(conn, ch, q)

    def publish(n: int = N_MESSAGES) -> None:
        for i in range(n):
            ch.basic_publish("", q, str(i).encode())

    return ch, consumers, publish


def test_prefetch_per_consumer(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=3)
    c.add("a")
    publish()
    assert c.settle(3) == {"a": 3}
    ch.basic_ack(c.got["a"][0])
    assert c.settle(4) == {"a": 4}
    ch.basic_ack(c.got["a"][-1], multiple=True)
    assert c.settle(7) == {"a": 7}


def test_prefetch_applies_to_each_consumer(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=3)
    c.add("a")
    c.add("b")
    publish()
    assert c.settle(6) == {"a": 3, "b": 3}


def test_prefetch_when_messages_are_already_queued(setup):
    ch, c, publish = setup
    publish()
    ch.basic_qos(prefetch_count=2)
    c.add("a")
    assert c.settle(2) == {"a": 2}


def test_prefetch_change_affects_only_new_consumers(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=2)
    c.add("a")
    ch.basic_qos(prefetch_count=4)
    c.add("b")
    publish()
    assert c.settle(6) == {"a": 2, "b": 4}


def test_consumer_before_qos_is_unlimited(setup):
    ch, c, publish = setup
    c.add("a")
    ch.basic_qos(prefetch_count=2)
    publish()
    assert c.settle(N_MESSAGES) == {"a": N_MESSAGES}


def test_prefetch_zero_is_unlimited(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=2)
    c.add("a")
    ch.basic_qos(prefetch_count=0)
    c.add("b")
    publish()
    counts = c.settle(N_MESSAGES)
    assert counts["a"] == 2
    assert counts["b"] == N_MESSAGES - 2


def test_no_ack_consumer_ignores_prefetch(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=2)
    c.add("a", auto_ack=True)
    publish()
    assert c.settle(N_MESSAGES) == {"a": N_MESSAGES}


def test_reject_and_nack_free_prefetch_slots(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=2)
    c.add("a")
    publish()
    assert c.settle(2) == {"a": 2}
    ch.basic_reject(c.got["a"][0], requeue=False)
    assert c.settle(3) == {"a": 3}
    ch.basic_nack(c.got["a"][-1], multiple=True, requeue=False)
    assert c.settle(5) == {"a": 5}


def test_requeued_message_is_redelivered_within_prefetch(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=1)
    c.add("a")
    publish(2)
    assert c.settle(1) == {"a": 1}
    ch.basic_nack(c.got["a"][0], requeue=True)
    assert c.settle(2) == {"a": 2}  # the same message again, nothing more


def test_basic_get_is_not_limited_by_prefetch(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=2)
    c.add("a")
    publish()
    assert c.settle(2) == {"a": 2}
    tags = [ch.basic_get(c.queue)[0].delivery_tag for _ in range(5)]
    assert len(tags) == 5
    assert c.settle(2) == {"a": 2}


def test_basic_get_does_not_use_up_consumer_prefetch(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=3)
    publish()
    for _ in range(2):
        ch.basic_get(c.queue)
    c.add("a")
    assert c.settle(3) == {"a": 3}


def test_cancel_and_new_consumer_gets_a_fresh_prefetch(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=3)
    c.add("a")
    publish()
    assert c.settle(3) == {"a": 3}
    ch.basic_cancel("a")
    c.add("b")
    assert c.settle(6) == {"a": 3, "b": 3}


# -- global=true: a limit shared by the channel's consumers ----------------------------------------


def test_global_prefetch_one_consumer(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=3, global_qos=True)
    c.add("a")
    publish()
    assert c.settle(3) == {"a": 3}
    ch.basic_ack(c.got["a"][0])
    assert c.settle(4) == {"a": 4}


def test_global_prefetch_is_shared_by_consumers(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=3, global_qos=True)
    c.add("a")
    c.add("b")
    c.add("c")
    publish()
    counts = c.settle(3)
    assert sum(counts.values()) == 3
    # acking one lets exactly one more through
    first = next(tags for tags in c.got.values() if tags)
    ch.basic_ack(first[0])
    assert sum(c.settle(4).values()) == 4


def test_global_prefetch_change_applies_to_existing_consumers(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=2, global_qos=True)
    c.add("a")
    ch.basic_qos(prefetch_count=4, global_qos=True)
    publish()
    assert c.settle(4) == {"a": 4}


def test_per_consumer_and_global_limits_both_apply(setup):
    ch, c, publish = setup
    ch.basic_qos(prefetch_count=2)
    ch.basic_qos(prefetch_count=5, global_qos=True)
    for tag in "abc":
        c.add(tag)
    publish()
    counts = c.settle(5)
    assert sum(counts.values()) == 5
    assert max(counts.values()) == 2


def test_global_prefetch_spans_queues(connect):
    conn = connect()
    ch = conn.channel()
    q1 = ch.queue_declare("", exclusive=True).method.queue
    q2 = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_qos(prefetch_count=4, global_qos=True)
    c1, c2 = Consumers(conn, ch, q1), Consumers(conn, ch, q2)
    c1.add("a")
    c2.add("b")
    for _ in range(10):
        ch.basic_publish("", q1, b"1")
        ch.basic_publish("", q2, b"2")
    deadline = time.monotonic() + 5
    while c1.total() + c2.total() < 4 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    conn.process_data_events(time_limit=0.3)
    assert c1.total() + c2.total() == 4


# -- the method itself -----------------------------------------------------------------------------


def test_qos_ok(raw):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Basic.Qos(prefetch_count=10), C.Basic.QosOk, 1)
    r.rpc(C.Basic.Qos(prefetch_count=10, global_=True), C.Basic.QosOk, 1)
    r.rpc(C.Basic.Qos(prefetch_count=65535), C.Basic.QosOk, 1)
    r.rpc(C.Basic.Qos(prefetch_count=0), C.Basic.QosOk, 1)


def test_prefetch_size_is_not_implemented(connect):
    conn = connect()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        ch.basic_qos(prefetch_size=1024)
    assert ei.value.reply_code == 540
    assert ei.value.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (1024)"
