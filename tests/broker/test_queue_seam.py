"""The queue-type seam (broker/queues/base.py) without channels or connections: a queue
feeds ``Consumer``s whose owner is any object with ``deliver`` / ``cancel_by_server``, and
settles through ``ack`` / ``reject`` / ``requeue``. Every type that consumes its messages
(classic, quorum) must pass the shared tests; streams, whose reads remove nothing, have
their own below."""

from __future__ import annotations

import pytest

from leveret.broker.clock import ManualClock, Timers
from leveret.broker.entry import Entry
from leveret.broker.message import Message
from leveret.broker.queues import QUEUE_TYPES, Consumer, Gate, Queue, queue_type
from leveret.broker.vhost import VirtualHost
from leveret.errors import NotImplemented_


class Owner:
    """A channel as a queue sees it: takes deliveries, hears of cancellations."""

    number = 1

    def __init__(self) -> None:
        self.delivered: list[tuple[str, Entry]] = []
        self.cancelled: list[str] = []

    def deliver(self, consumer: Consumer, entry: Entry) -> None:
        if not consumer.no_ack:
            consumer.unacked += 1  # the channel's share of the bookkeeping
        self.delivered.append((consumer.tag, entry))

    def cancel_by_server(self, consumer: Consumer) -> None:
        self.cancelled.append(consumer.tag)

    def bodies(self) -> list[bytes]:
        return [e.message.body for _, e in self.delivered]


class Socket:
    writable = True
    stuck = False


def msg(body: bytes, key: str = "q") -> Message:
    return Message("", key, b"\x00\x00", body)


def make(kind: str, arguments: dict[str, object] | None = None,
         vhost: VirtualHost | None = None) -> Queue:
    vhost = vhost or VirtualHost("/", Timers(ManualClock()))
    return vhost.declare_queue("q", False, kind in ("quorum", "stream"), False, False,
                               {"x-queue-type": kind, **(arguments or {})}, None)


def subscribe(q: Queue, owner: Owner, *, prefetch: int = 0, no_ack: bool = False,
              gate: Gate | None = None, output: Socket | None = None,
              tag: str = "c") -> Consumer:
    consumer = Consumer(owner, gate or Gate(), output or Socket(), q, tag, no_ack, False,
                        prefetch, {})
    q.add_consumer(consumer)
    return consumer


@pytest.fixture(params=sorted(set(QUEUE_TYPES) - {"stream"}))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("kind", sorted(QUEUE_TYPES))
def test_the_type_is_chosen_by_x_queue_type(kind: str) -> None:
    q = make(kind)
    assert type(q) is queue_type(kind) and q.queue_type == kind


def test_prefetch_gate_and_output_hold_deliveries_back(kind: str) -> None:
    q, owner, gate, out = make(kind), Owner(), Gate(), Socket()
    consumer = subscribe(q, owner, prefetch=2, gate=gate, output=out)
    for b in (b"1", b"2", b"3", b"4", b"5"):
        q.push(msg(b))
    assert owner.bodies() == [b"1", b"2"] and q.unacked == 2 and q.message_count == 3
    q.ack([owner.delivered[0][1]])
    consumer.unacked -= 1
    gate.open = False  # e.g. the channel's global prefetch is reached
    q.dispatch()
    assert owner.bodies() == [b"1", b"2"]
    gate.open, out.writable = True, False  # the socket is full
    q.dispatch()
    assert owner.bodies() == [b"1", b"2"]
    out.writable = True
    q.dispatch()
    assert owner.bodies() == [b"1", b"2", b"3"] and q.unacked == 2
    assert q.counters.deliver == 3 and q.counters.ack == 1


def test_requeue_puts_messages_back_in_order_redelivered(kind: str) -> None:
    q, owner = make(kind), Owner()
    for b in (b"1", b"2", b"3"):
        q.push(msg(b))
    consumer = subscribe(q, owner)
    first, second = owner.delivered[0][1], owner.delivered[1][1]
    q.remove_consumer(consumer)
    q.requeue([second, first])
    assert q.unacked == 1  # the third is still out
    entry = q.get(no_ack=True)
    assert entry is not None and entry.message.body == b"1" and entry.redelivered


def test_reject_without_requeue_dead_letters_through_the_host(kind: str) -> None:
    vhost = VirtualHost("/", Timers(ManualClock()))
    vhost.declare_exchange("dlx", "fanout", False, False, False, False, {})
    dead = vhost.declare_queue("dead", False, False, False, False, {}, None)
    vhost.bind_queue("dead", "dlx", "", {}, None)
    q = make(kind, {"x-dead-letter-exchange": "dlx"}, vhost)
    q.push(msg(b"x"))
    entry = q.get(no_ack=False)
    assert entry is not None and q.unacked == 1
    q.reject([entry], requeue=False)
    assert q.unacked == 0 and q.message_count == 0
    got = dead.get(no_ack=True)
    assert got is not None and got.message.headers["x-death"][0]["reason"] == "rejected"


def test_delete_cancels_consumers_and_drops_messages(kind: str) -> None:
    vhost = VirtualHost("/", Timers(ManualClock()))
    q, owner = make(kind, vhost=vhost), Owner()
    q.push(msg(b"1"))
    subscribe(q, owner, prefetch=1)
    q.push(msg(b"2"))
    assert vhost.delete_queue("q", False, False, None) == 1
    assert owner.cancelled == ["c"] and q.deleted and q.message_count == 0
    q.requeue([owner.delivered[0][1]])  # a channel closing later: nothing comes back
    assert q.message_count == 0


def test_only_quorum_queues_refuse_delete_if_empty(kind: str) -> None:
    q = make(kind)
    if kind == "quorum":
        with pytest.raises(NotImplemented_):
            q.check_delete(False, True)
    else:
        q.check_delete(False, True)


# -- streams: reads remove nothing ---------------------------------------------------


def offsets(owner: Owner) -> list[int]:
    return [e.seq for _, e in owner.delivered]


def test_a_stream_reader_gets_credit_back_from_acks_and_removes_nothing() -> None:
    q, owner = make("stream"), Owner()
    for b in (b"1", b"2", b"3", b"4"):
        q.push(msg(b))
    consumer = Consumer(owner, Gate(), Socket(), q, "c", False, False, 2,
                        {"x-stream-offset": "first"})
    q.add_consumer(consumer)
    assert owner.bodies() == [b"1", b"2"] and offsets(owner) == [0, 1]
    q.ack([owner.delivered[0][1]])
    consumer.unacked -= 1
    q.dispatch()
    assert owner.bodies() == [b"1", b"2", b"3"] and q.message_count == 4
    other = Owner()
    q.add_consumer(Consumer(other, Gate(), Socket(), q, "d", False, False, 10,
                            {"x-stream-offset": 1}))
    assert offsets(other) == [1, 2, 3]
    headers = other.delivered[0][1].message.headers
    assert headers == {"x-stream-offset": 1}


def test_a_stream_returns_nothing_and_refuses_get_reject_and_purge() -> None:
    q, owner = make("stream"), Owner()
    q.push(msg(b"1"))
    consumer = Consumer(owner, Gate(), Socket(), q, "c", False, False, 5,
                        {"x-stream-offset": "first"})
    q.add_consumer(consumer)
    entry = owner.delivered[0][1]
    q.requeue([entry])  # the channel closed
    assert q.unacked == 0 and q.message_count == 1 and len(owner.delivered) == 1
    for refused in (lambda: q.get(False), lambda: q.reject([entry], True), q.purge):
        with pytest.raises(NotImplemented_):
            refused()
    q.vhost.drop_queue(q)  # type: ignore[attr-defined]
    assert owner.cancelled == ["c"]


def test_a_stream_reader_gets_only_what_the_store_made_durable() -> None:
    """An offset a reader saw is never lost to a crash and reused for another entry."""
    from leveret.store.memory import MemoryStore

    vhost = VirtualHost("/", Timers(ManualClock()))
    vhost.store = store = MemoryStore()
    q, owner = make("stream", vhost=vhost), Owner()
    q.add_consumer(Consumer(owner, Gate(), Socket(), q, "c", False, False, 10, {}))
    q.push(msg(b"1"))
    q.push(msg(b"2"))
    assert owner.delivered == [] and vhost.awaiting_commit == {q}
    store.commit()
    for waiting in list(vhost.awaiting_commit):
        waiting.synced()
    assert owner.bodies() == [b"1", b"2"] and offsets(owner) == [0, 1]


def test_each_queue_type_is_an_instance_of_its_own_classes_only() -> None:
    """isinstance tells the types apart, in whatever order it is asked (compiled by mypyc,
    an ABCMeta hierarchy once shared one isinstance cache: a quorum queue passed for a
    stream once any queue had passed for a Queue)."""
    queues = {kind: make(kind) for kind in QUEUE_TYPES}
    for q in queues.values():
        assert isinstance(q, Queue)
    # a quorum queue is a classic queue that counts deliveries (quorum.py)
    expected = {"classic": {"classic"}, "quorum": {"classic", "quorum"}, "stream": {"stream"}}
    for kind, q in queues.items():
        found = {other for other, cls in QUEUE_TYPES.items() if isinstance(q, cls)}
        assert found == expected[kind], kind
