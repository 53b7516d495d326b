"""Paging (docs/storage.md, "Paging"): past its in-memory limit a queue keeps only a compact
index of further messages and reads their bodies back from its log. Real broker with a data
directory, real clients; tiny limits (``x-max-in-memory-length``) keep the backlogs small."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aio_pika
import pika
import pytest
from served import kill, serve

import leveret
from leveret.broker.clock import ManualClock
from leveret.broker.node import Limits
from leveret.broker.queues import backing as backing_module
from leveret.broker.queues import classic as classic_module

PERSISTENT = aio_pika.DeliveryMode.PERSISTENT
WINDOW = 10  # messages kept in memory by the queues of these tests


def _queue(broker: leveret.Broker, name: str):  # type: ignore[no-untyped-def]
    return broker.node.vhosts["/"].queues[name]


async def _publish(ch: aio_pika.abc.AbstractChannel, key: str, bodies: list[bytes],
                   persistent: bool | list[bool] = True, **props: object) -> None:
    """Publish all, with confirms in flight together (the channel has confirms on)."""
    flags = persistent if isinstance(persistent, list) else [persistent] * len(bodies)
    await asyncio.gather(*(ch.default_exchange.publish(aio_pika.Message(
        body, delivery_mode=PERSISTENT if p else None, **props), routing_key=key)  # type: ignore[arg-type]
        for body, p in zip(bodies, flags, strict=True)))


async def _drain(ch: aio_pika.abc.AbstractChannel, name: str, n: int, prefetch: int = 50,
                 ack: bool = True) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Consume ``n`` messages with manual acks and the given prefetch."""
    await ch.set_qos(prefetch_count=prefetch)
    q = await ch.get_queue(name)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    done = asyncio.Event()

    async def on_message(m: aio_pika.abc.AbstractIncomingMessage) -> None:
        got.append(m)
        if ack:
            await m.ack()
        if len(got) == n:
            done.set()

    tag = await q.consume(on_message)
    await asyncio.wait_for(done.wait(), 10)
    await q.cancel(tag)
    return got


async def _get_all(ch: aio_pika.abc.AbstractChannel, name: str) -> list[bytes]:
    q = await ch.get_queue(name)
    out = []
    while (m := await q.get(no_ack=True, fail=False)) is not None:
        out.append(m.body)
    return out


async def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds (acks in flight, the commit after them)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _numbers(n: int, prefix: str = "") -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(n)]


@pytest.mark.parametrize("durable", [True, False])
async def test_order_holds_across_the_window_boundary(tmp_path: Path, durable: bool) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("q", durable=durable,
                               arguments={"x-max-in-memory-length": WINDOW})
        bodies = _numbers(300)
        await _publish(ch, "q", bodies, persistent=[i % 3 != 0 for i in range(300)])
        q = _queue(broker, "q")
        assert (len(q.ready), q.ready.in_memory) == (300, WINDOW)
        assert q.memory_used == sum(len(b) for b in bodies[:WINDOW])
        declared = await ch.declare_queue("q", durable=durable, passive=True)
        assert declared.declaration_result.message_count == 300
        consumer = asyncio.ensure_future(_drain(ch, "q", 400))
        await asyncio.sleep(0.05)
        await _publish(ch, "q", _numbers(100, "late-"))  # behind the backlog
        got = await consumer
        assert [m.body for m in got] == bodies + _numbers(100, "late-")
        assert not any(m.redelivered for m in got)
        assert [m.delivery_mode == PERSISTENT for m in got[:3]] == [False, True, True]
        assert len(q.ready) == 0 and q.ready_bytes == 0
        qlog = q.backing.paging_log
        assert qlog is not None
        await _eventually(lambda: len(qlog) == 0)  # the last acks
        await conn.close()


async def test_default_limits_and_lazy_queues(tmp_path: Path) -> None:
    limits = Limits(queue_memory_messages=20)
    async with leveret.Broker(port=0, data_dir=tmp_path, limits=limits) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("plain")
        await ch.declare_queue("lazy", arguments={"x-queue-mode": "lazy"})
        await ch.declare_queue("bytes", arguments={"x-max-in-memory-bytes": 100})
        for name in ("plain", "lazy", "bytes"):
            await _publish(ch, name, [b"x" * 10] * 50, persistent=False)
        assert _queue(broker, "plain").ready.in_memory == 20
        assert _queue(broker, "lazy").ready.in_memory == 0
        assert _queue(broker, "bytes").ready.in_memory == 10
        await _publish(ch, "lazy", _numbers(30))
        got = await _drain(ch, "lazy", 80)
        assert [m.body for m in got] == [b"x" * 10] * 50 + _numbers(30)
        await conn.close()


async def test_no_paging_without_a_data_directory() -> None:
    async with leveret.Broker(port=0) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("q", arguments={"x-max-in-memory-length": 1})
        await _publish(ch, "q", _numbers(20), persistent=False)
        assert _queue(broker, "q").ready.in_memory == 20
        assert await _get_all(ch, "q") == _numbers(20)
        await conn.close()


async def test_priorities_with_paged_levels_and_after_a_restart(tmp_path: Path) -> None:
    args = {"x-max-priority": 3, "x-max-in-memory-length": 5}
    sent = [(i % 5, i) for i in range(120)]  # priority 4 counts as 3 (the maximum)
    expected = [f"{p}-{i}".encode()
                for p, i in sorted(sent, key=lambda s: (-min(s[0], 3), s[1]))]
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("p", durable=True, arguments=args)
        for p, i in sent:
            await ch.default_exchange.publish(aio_pika.Message(
                f"{p}-{i}".encode(), priority=p, delivery_mode=PERSISTENT), routing_key="p")
        assert _queue(broker, "p").ready.in_memory == 5
        assert await _get_all(ch, "p") == expected
        for p, i in sent:
            await ch.default_exchange.publish(aio_pika.Message(
                f"{p}-{i}".encode(), priority=p, delivery_mode=PERSISTENT,
                headers={"h": "v"}, content_type="text/plain"), routing_key="p")
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        q = _queue(broker, "p")
        assert len(q.ready) == 120 and q.ready.in_memory <= backing_module.PAGE_IN_MESSAGES
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        assert await _get_all(ch, "p") == expected
        await conn.close()


async def test_requeued_messages_go_back_to_their_positions(tmp_path: Path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("r", durable=True, arguments={"x-max-in-memory-length": 5})
        await _publish(ch, "r", _numbers(60))
        held = await _drain(ch, "r", 20, prefetch=20, ack=False)
        assert [m.body for m in held] == _numbers(20)
        for m in held:
            if m.body in (b"5", b"12", b"19"):
                await m.nack(requeue=True)
            else:
                await m.ack()
        # a channel closing with deliveries unacked requeues them too
        ch2 = await conn.channel()
        more = await _drain(ch2, "r", 10, prefetch=10, ack=False)
        assert [m.body for m in more] == [b"5", b"12", b"19", *_numbers(27)[20:]]
        await ch2.close()
        got = await _drain(ch, "r", 43)
        assert [m.body for m in got] == [b"5", b"12", b"19", *_numbers(60)[20:]]
        assert [m.redelivered for m in got[:11]] == [True] * 10 + [False]
        await conn.close()


@pytest.mark.parametrize("persistent", [True, False])
async def test_a_quorum_queue_returns_a_nack_behind_the_paged_messages(
        tmp_path: Path, persistent: bool) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        q = await ch.declare_queue("qq", durable=True, arguments={
            "x-queue-type": "quorum", "x-max-in-memory-length": 5})
        await _publish(ch, "qq", _numbers(30), persistent)
        taken = [await q.get(), await q.get()]
        await taken[1].nack(requeue=True)
        await taken[0].nack(requeue=True)
        await _eventually(lambda: _queue(broker, "qq").message_count == 30)
        assert _queue(broker, "qq").backing.ready.paged_count > 0
        got = await _drain(ch, "qq", 30)
        assert [m.body for m in got] == [*_numbers(30)[2:], b"1", b"0"]
        assert [m.headers.get("x-delivery-count") for m in got[-3:]] == [None, 1, 1]
        assert [m.redelivered for m in got[-3:]] == [False, True, True]
        await conn.close()


async def test_delivery_counts_of_paged_messages_survive_a_restart(tmp_path: Path) -> None:
    args = {"x-delivery-limit": 5, "x-max-in-memory-length": 5}
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        q = await ch.declare_queue("c", durable=True, arguments=args)
        await _publish(ch, "c", _numbers(30))
        for _ in range(2):
            m = await q.get()
            assert m.body == b"0"
            await m.nack(requeue=True)
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        q = await ch.declare_queue("c", durable=True, passive=True)
        first = await q.get()
        assert first.body == b"0" and first.redelivered
        assert first.headers["x-delivery-count"] == 2
        await first.ack()
        rest = await _drain(ch, "c", 29)
        assert [m.body for m in rest] == _numbers(30)[1:]
        assert not any(m.redelivered for m in rest)
        await conn.close()


async def test_ttl_expires_paged_messages_from_the_head_into_the_dead_letter_queue(
        tmp_path: Path) -> None:
    clock = ManualClock()
    async with leveret.Broker(port=0, data_dir=tmp_path, clock=clock) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("dead", durable=True)
        await ch.declare_queue("t", durable=True, arguments={
            "x-message-ttl": 60_000, "x-max-in-memory-length": 5,
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"})
        await _publish(ch, "t", _numbers(40))
        clock.advance(30)
        await _publish(ch, "t", _numbers(10, "later-"))
        assert len(_queue(broker, "t").ready) == 50
        clock.advance(31)  # the first 40 expire, in order, through the paged part
        assert len(_queue(broker, "t").ready) == 10
        q = await ch.get_queue("dead")
        dead = []
        while (m := await q.get(no_ack=True, fail=False)) is not None:
            dead.append(m)
        assert [m.body for m in dead] == _numbers(40)
        assert all(m.headers["x-death"][0]["reason"] == "expired" for m in dead)
        clock.advance(31)
        assert len(_queue(broker, "t").ready) == 0
        assert await _get_all(ch, "dead") == _numbers(10, "later-")
        await conn.close()


async def test_max_length_drops_paged_messages_from_the_head(tmp_path: Path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("dropped")
        await ch.declare_queue("m", arguments={
            "x-max-length": 30, "x-max-in-memory-length": 5,
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dropped"})
        await ch.declare_queue("full", arguments={
            "x-max-length": 30, "x-max-in-memory-length": 5, "x-overflow": "reject-publish"})
        await _publish(ch, "m", _numbers(100))
        assert await _get_all(ch, "dropped") == _numbers(70)
        assert await _get_all(ch, "m") == _numbers(100)[70:]
        confirm = await conn.channel(publisher_confirms=True)
        await _publish(confirm, "full", _numbers(30))
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await _publish(confirm, "full", [b"one too many"])
        assert await _get_all(ch, "full") == _numbers(30)
        await conn.close()


@pytest.mark.parametrize("durable", [True, False])
async def test_purge_acks_the_paged_backlog_and_keeps_unacked_ones(
        tmp_path: Path, durable: bool) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        q = await ch.declare_queue("pu", durable=durable,
                                   arguments={"x-max-in-memory-length": WINDOW})
        await _publish(ch, "pu", _numbers(500))
        held = [await q.get() for _ in range(3)]
        assert await q.purge() is not None
        queue = _queue(broker, "pu")
        assert len(queue.ready) == 0 and queue.ready_bytes == 0
        qlog = queue.backing.paging_log
        # the deliveries awaiting an ack stay in the log (they were in memory, so a
        # non-durable queue never wrote them)
        assert len(qlog) == (3 if durable else 0)
        for m in held:
            await m.ack()
        await _publish(ch, "pu", [b"after"])
        assert await _get_all(ch, "pu") == [b"after"]
        await _eventually(lambda: len(qlog) == 0)
        await conn.close()
    if durable:
        async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
            assert len(_queue(broker, "pu").ready) == 0


async def test_restart_with_a_paged_backlog_reads_only_the_head(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backing_module, "PAGE_IN_MESSAGES", 50)
    bodies = _numbers(600)
    persistent = [i % 4 != 3 for i in range(600)]  # every 4th is transient: not kept
    kept = [b for b, p in zip(bodies, persistent, strict=True) if p]
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("b", durable=True, arguments={"x-max-in-memory-length": 20})
        await _publish(ch, "b", bodies, persistent=persistent)
        held = await _drain(ch, "b", 10, prefetch=10, ack=False)  # delivered, not acked
        assert [m.body for m in held] == bodies[:10]
        await conn.close()  # they go back to the queue, marked delivered in the log
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        q = _queue(broker, "b")
        assert len(q.ready) == len(kept)
        assert q.ready.in_memory == 50  # the first batch, read for the expiry check
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        got = await _drain(ch, "b", len(kept), prefetch=200)
        assert [m.body for m in got] == kept
        redelivered = [m.body for m in got if m.redelivered]
        assert redelivered == [b for b in kept if int(b) < 10]
        await conn.close()


def test_confirmed_paged_messages_survive_kill_9(tmp_path: Path) -> None:
    proc, port = serve(tmp_path / "data")
    conn = None
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.queue_declare("k", durable=True, arguments={"x-max-in-memory-length": 5})
        ch.confirm_delivery()
        for i in range(200):
            ch.basic_publish("", "k", str(i).encode(), pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", "k", b"transient")
    finally:
        kill(proc, conn)
    proc, port = serve(tmp_path / "data")
    conn = None
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        got = []
        while True:
            method, _props, body = ch.basic_get("k", auto_ack=True)
            if method is None:
                break
            got.append(body)
        assert got == _numbers(200)
    finally:
        kill(proc, conn)


async def test_transient_scratch_logs_are_deleted_with_their_queue(tmp_path: Path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        q = await ch.declare_queue("s", arguments={"x-max-in-memory-length": 5})
        await _publish(ch, "s", _numbers(50))  # persistent, but the queue is not durable
        assert len(list((tmp_path / "transient").iterdir())) == 1
        assert list((tmp_path / "queues").iterdir()) == []
        await q.delete(if_unused=False, if_empty=False)
        assert list((tmp_path / "transient").iterdir()) == []
        exclusive = await ch.declare_queue("", exclusive=True,
                                           arguments={"x-max-in-memory-length": 5})
        await _publish(ch, exclusive.name, _numbers(50))
        assert len(list((tmp_path / "transient").iterdir())) == 1
        await conn.close()  # the exclusive queue goes with its connection
        await _eventually(lambda: list((tmp_path / "transient").iterdir()) == [])


def _segments(directory: Path) -> int:
    return sum(1 for _ in directory.glob("*/*.seg"))


@pytest.mark.parametrize("durable", [True, False])
async def test_segments_are_reclaimed_during_a_long_drain(tmp_path: Path,
                                                          durable: bool) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        assert broker.store is not None
        broker.store.segment_bytes = 8192  # ~7 messages of 1 KiB per segment
        where = tmp_path / ("queues" if durable else "transient")
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("d", durable=durable, arguments={"x-max-in-memory-length": 5})
        await _publish(ch, "d", [b"%04d" % i + b"x" * 1020 for i in range(400)],
                       persistent=durable)
        full = _segments(where)
        assert full >= 50
        q = await ch.get_queue("d")
        got = []
        for _ in range(200):
            m = await q.get()
            await m.ack()
            got.append(m)
        # deleted at the commit after the last acks, while half the backlog is left
        await _eventually(lambda: _segments(where) <= full // 2 + 2)
        got += await _drain(ch, "d", 200)
        assert [m.body[:4] for m in got] == [b"%04d" % i for i in range(400)]
        await _eventually(lambda: _segments(where) <= 2)
        await conn.close()


async def test_a_paged_message_rotted_on_disk_is_dropped_and_the_rest_delivered(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("rot", durable=True, arguments={"x-max-in-memory-length": 5})
        await _publish(ch, "rot", [b"%03d" % i + b"-" * 50 for i in range(50)])
        qlog = _queue(broker, "rot").backing.log
        seg = qlog.segments[0]
        where = seg.pos[20] + 30  # inside message 20's record, written (confirmed)
        with open(seg.path, "r+b") as f:
            f.seek(where)
            byte = f.read(1)
            f.seek(where)
            f.write(bytes([byte[0] ^ 0xFF]))
        got = await _drain(ch, "rot", 49)
        assert [m.body[:3] for m in got] == [b"%03d" % i for i in range(50) if i != 20]
        assert "failed its checksum" in caplog.text
        await _eventually(lambda: len(qlog) == 0)  # the bad one was acked (dropped)
        await conn.close()


async def test_a_large_expired_backlog_leaves_a_slice_per_timer_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classic_module, "EXPIRY_BUDGET", 5)
    clock = ManualClock()
    async with leveret.Broker(port=0, data_dir=tmp_path, clock=clock) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("e", arguments={"x-message-ttl": 1000,
                                               "x-max-in-memory-length": 3})
        await _publish(ch, "e", _numbers(20), persistent=False)
        q = _queue(broker, "e")
        clock.advance(2)  # all expired: the timer drops five, then yields
        assert len(q.ready) == 15
        clock.advance(0.01)
        assert len(q.ready) == 10
        assert await _get_all(ch, "e") == []  # a get expires the rest at once
        assert len(q.ready) == 0
        await conn.close()


@pytest.mark.parametrize("arguments", [{}, {"x-max-priority": 5}, {"x-max-in-memory-length": 7}])
def test_push_pages_exactly_when_the_full_check_says_so(tmp_path, arguments) -> None:
    """The push path skips the paging check while the window certainly has room; random
    pushes, pops, requeues and purges must page a message exactly when ``should_page``
    (the full check) says so, or order would break."""
    import random

    from leveret.broker.message import Message
    from leveret.broker.node import Limits, Node
    from leveret.broker.queues import ClassicQueue as Queue
    from leveret.store.disk import DiskStore

    rng = random.Random(1)
    node = Node(limits=Limits(queue_memory_messages=50, queue_memory_bytes=3000))
    store = DiskStore(tmp_path)
    node.attach_store(store)
    try:
        q = Queue(node.vhosts["/"], "q", arguments=dict(arguments))
        taken = []
        for step in range(5000):
            r = rng.random()
            if r < 0.55:
                size = rng.choice([1, 10, 100, 500])
                prio = rng.randint(0, 5)
                props = bytes([0x08, 0x00, prio]) if q.max_priority else b"\x00\x00"
                expect = q.ready.should_page(min(prio, q.max_priority) if q.max_priority
                                             else 0, q.memory_messages, q.memory_bytes,
                                             q.ready_bytes)
                before = q.ready.paged_count
                q.push(Message("", "k", props, b"x" * size))
                assert (q.ready.paged_count > before) == expect, step
            elif r < 0.85 and q.ready:
                taken.append(q.backing.pop())
            elif taken and r < 0.95:
                k = rng.randint(1, len(taken))
                back, taken = taken[:k], taken[k:]
                q.requeue(back)
            elif r > 0.999:
                q.purge()
    finally:
        store.close()
