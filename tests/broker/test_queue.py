"""Queue semantics without sockets: FIFO, requeue to the original position, purge."""

from __future__ import annotations

from leveret.broker.message import Message
from leveret.broker.queues import ClassicQueue as Queue
from leveret.broker.vhost import VirtualHost


def msg(body: bytes) -> Message:
    return Message("", "q", b"\x00\x00", body)


def bodies(q: Queue) -> list[bytes]:
    return [e.message.body for e in q.ready]


def test_fifo_and_get() -> None:
    q = Queue(VirtualHost("/"), "q")
    for b in (b"1", b"2", b"3"):
        q.push(msg(b))
    entry = q.get(no_ack=False)
    assert entry is not None and entry.message.body == b"1" and not entry.redelivered
    assert bodies(q) == [b"2", b"3"]
    assert q.ready_bytes == 2


def test_requeue_restores_original_positions() -> None:
    q = Queue(VirtualHost("/"), "q")
    for b in (b"1", b"2", b"3", b"4"):
        q.push(msg(b))
    first, second, third = q.get(no_ack=False), q.get(no_ack=False), q.get(no_ack=False)
    assert first and second and third
    q.requeue([third, first])
    assert bodies(q) == [b"1", b"3", b"4"]
    assert q.ready[0].redelivered and not q.ready[2].redelivered
    q.requeue([second])
    assert bodies(q) == [b"1", b"2", b"3", b"4"]


def test_purge_counts_ready_only() -> None:
    q = Queue(VirtualHost("/"), "q")
    q.push(msg(b"a"))
    q.push(msg(b"b"))
    assert q.get(no_ack=False) is not None
    assert q.purge() == 1
    assert q.message_count == 0 and q.ready_bytes == 0
