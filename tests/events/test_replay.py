"""Events kept in streams and replay readers: rebuild a projection from the first event,
backfill from a point in time, resume after a restart without reprocessing, and the
``leveret events replay`` / ``tail`` commands. Broker tests run on leveret and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pydantic
import pytest
from events_helpers import exists, uid
from events_proxy import Proxy

from leveret.events import (
    Delivery,
    EventBus,
    EventsError,
    FileOffsetStore,
    MemoryOffsetStore,
    OffsetStore,
    StreamRetention,
    event,
)
from leveret.events.replay import StreamCursor, ack, last_offset
from leveret.events.stream import StartPoint, offset_of, parse_interval, topic_matches
from leveret.events.testing import eventually

ROOT = Path(__file__).resolve().parents[2]


@event("orders.placed")
class OrderPlaced(pydantic.BaseModel):
    order_id: str
    total: float


async def read_all(connection: Any, stream: str, start: Any = "first",
                   wait: float = 1.0) -> list[tuple[int, str, dict]]:
    """(offset, routing key, payload) of what ``stream`` holds, read with a raw cursor."""
    cursor = StreamCursor(await connection.channel(), stream, StartPoint.of(start), 50)
    out = []
    try:
        await cursor.open()
        while (m := await cursor.next(wait)) is not None:
            out.append((offset_of(m.headers), m.routing_key, json.loads(m.body)))
            await ack(m)
    finally:
        await cursor.close()
    return out


def collect(into: list[int]) -> Any:
    async def handler(e: dict) -> None:
        into.append(e["n"])
    return handler


async def publish(bus: EventBus, *keys_and_n: tuple[str, int]) -> None:
    for key, n in keys_and_n:
        await bus.publish({"n": n}, routing_key=key)


# -- keeping ----------------------------------------------------------------------------


async def test_a_kept_bus_lands_every_event_in_its_stream_and_groups_still_work(
        make_bus, raw_connection) -> None:
    bus = make_bus(keep=StreamRetention(max_age="7D", max_length_bytes=10_000_000,
                                        max_segment_size_bytes=1_000_000))
    group, handled = uid("billing"), []

    @bus.subscribe("orders.*", group=group)
    async def bill(e: dict) -> None:
        handled.append(e["n"])

    await bus.start()
    assert bus.stream_for("orders.placed") == f"{bus.exchange}.stream"
    await publish(bus, ("orders.placed", 0), ("orders.cancelled", 1), ("users.new", 2))
    await eventually(lambda: sorted(handled) == [0, 1])  # competing consumers unchanged
    kept = await read_all(raw_connection, f"{bus.exchange}.stream")
    assert kept == [(0, "orders.placed", {"n": 0}), (1, "orders.cancelled", {"n": 1}),
                    (2, "users.new", {"n": 2})]
    await bus.close()
    await bus.delete_topology()
    assert not await exists(raw_connection, f"{bus.exchange}.stream")


async def test_one_event_type_kept_in_its_own_stream(make_bus, raw_connection) -> None:
    bus = make_bus()

    @bus.event("orders.shipped", keep=StreamRetention(max_age="30D"))
    class Shipped(pydantic.BaseModel):
        order_id: str

    assert bus.keep("orders.placed") == f"{bus.exchange}.stream.orders.placed"
    with pytest.raises(ValueError, match="no wildcards"):
        bus.keep("orders.*")
    await bus.connect()
    await bus.publish(Shipped(order_id="o-1"))
    await bus.publish(OrderPlaced(order_id="o-2", total=3))
    await bus.publish({"x": 1}, routing_key="orders.cancelled")  # kept by neither
    shipped = await read_all(raw_connection, f"{bus.exchange}.stream.orders.shipped")
    placed = await read_all(raw_connection, f"{bus.exchange}.stream.orders.placed")
    assert shipped == [(0, "orders.shipped", {"order_id": "o-1"})]
    assert placed == [(0, "orders.placed", {"order_id": "o-2", "total": 3.0})]
    assert not await exists(raw_connection, f"{bus.exchange}.stream")


# -- replay -----------------------------------------------------------------------------


async def test_rebuild_a_projection_from_first(make_bus) -> None:
    """Another service (its bus keeps nothing) rebuilds its view from every kept event."""
    producer = make_bus(keep=StreamRetention(max_age="7D"))
    await producer.connect()
    for i in range(30):
        await producer.publish(OrderPlaced(order_id=f"o-{i}", total=i))
    await producer.publish({"n": 1}, routing_key="users.new")

    totals: dict[str, float] = {}
    offsets: list[int] = []
    reader = make_bus(prefetch=3)  # same exchange; finds <exchange>.stream on the broker

    @reader.replay("orders.placed", name=uid("projection"), start="first", prefetch=5)
    async def project(order: OrderPlaced, delivery: Delivery) -> None:
        totals[order.order_id] = order.total
        assert delivery.offset is not None and delivery.event_type == "orders.placed"
        offsets.append(delivery.offset)

    await reader.start()
    await eventually(lambda: len(totals) == 30)
    assert offsets == list(range(30))  # in stream order, once each, 5 in flight at most
    assert reader.readers[0].stream == f"{producer.exchange}.stream"
    await eventually(lambda: reader.readers[0].last == 30)  # users.new: read, skipped
    await reader.close()


async def test_resume_after_a_restart_without_reprocessing(make_bus, tmp_path: Path) -> None:
    producer = make_bus(keep=StreamRetention())
    await producer.connect()
    await publish(producer, *(("orders.placed", n) for n in range(5)))
    path, name = tmp_path / "offsets.json", uid("mailer")
    seen: list[int] = []

    def reader_bus() -> EventBus:
        bus = make_bus(offsets=FileOffsetStore(path))

        @bus.replay("orders.*", name=name)
        async def mail(e: dict, d: Delivery) -> None:
            seen.append(e["n"])
        return bus

    first = reader_bus()
    await first.start()
    await eventually(lambda: seen == [0, 1, 2, 3, 4])
    await first.close()
    assert json.loads(path.read_text()) == {name: 4}

    await publish(producer, ("orders.placed", 5), ("orders.placed", 6))
    second = reader_bus()  # a new process would do the same: the file is all it needs
    await second.start()
    await eventually(lambda: len(seen) == 7)
    await asyncio.sleep(0.3)
    assert seen == [0, 1, 2, 3, 4, 5, 6]  # 0..4 not handled again
    await publish(producer, ("orders.placed", 7))  # and it follows new events
    await eventually(lambda: seen[-1] == 7)
    await second.close()
    assert json.loads(path.read_text()) == {name: 7}


async def test_backfill_from_a_point_in_time(make_bus) -> None:
    producer = make_bus(keep=StreamRetention())
    await producer.connect()
    await publish(producer, ("orders.placed", 0), ("orders.placed", 1))
    await asyncio.sleep(1.1)  # AMQP timestamps are whole seconds
    since = datetime.datetime.now(datetime.UTC)
    await publish(producer, ("orders.placed", 2), ("orders.placed", 3))

    got: dict[str, list[int]] = {"ts": [], "hour": [], "interval": []}
    reader = make_bus()
    for key, start in (("ts", since), ("hour", "1h"),
                       ("interval", datetime.timedelta(minutes=10))):
        reader.replay("orders.#", name=uid(key), start=start)(collect(got[key]))

    await reader.start()
    await eventually(lambda: got["ts"] == [2, 3] and len(got["hour"]) == 4
                     and len(got["interval"]) == 4)
    await asyncio.sleep(0.3)
    assert got == {"ts": [2, 3], "hour": [0, 1, 2, 3], "interval": [0, 1, 2, 3]}


async def test_start_at_an_offset_at_next_and_at_last(make_bus) -> None:
    producer = make_bus(keep=StreamRetention())
    await producer.connect()
    await publish(producer, *(("t", n) for n in range(4)))
    got: dict[str, list[int]] = {"offset": [], "next": [], "last": []}
    reader = make_bus()
    for key, start in (("offset", 2), ("next", "next"), ("last", "last")):
        reader.replay("#", name=uid(key), start=start)(collect(got[key]))

    await reader.start()
    await eventually(lambda: got["offset"] == [2, 3] and got["last"] == [3])
    await publish(producer, ("t", 4))
    await eventually(lambda: got == {"offset": [2, 3, 4], "next": [4], "last": [3, 4]})


async def test_a_failing_handler_stops_the_reader_and_is_retried_on_restart(
        make_bus) -> None:
    producer = make_bus(keep=StreamRetention())
    await producer.connect()
    await publish(producer, *(("t", n) for n in range(4)))
    store, name, seen = MemoryOffsetStore(), uid("fragile"), []
    broken = {"yes": True}

    def reader_bus() -> EventBus:
        bus = make_bus(offsets=store)

        @bus.replay("t", name=name)
        async def h(e: dict) -> None:
            if e["n"] == 2 and broken["yes"]:
                raise RuntimeError("projection database down")
            seen.append(e["n"])
        return bus

    first = reader_bus()
    await first.start()
    await eventually(lambda: first.readers[0].error is not None)
    assert seen == [0, 1] and await store.load(name) == 1
    await first.close()
    broken["yes"] = False
    second = reader_bus()
    await second.start()
    await eventually(lambda: seen == [0, 1, 2, 3])


async def test_a_reconnection_resumes_after_the_last_handled_event(make_bus,
                                                                    bus_url) -> None:
    producer = make_bus(keep=StreamRetention())
    await producer.connect()
    await publish(producer, *(("t", n) for n in range(3)))
    proxy = await Proxy(bus_url).start()
    try:
        seen: list[int] = []
        reader = make_bus(url=proxy.url)
        reader.replay("t", name=uid("steady"))(collect(seen))
        await reader.start()
        await eventually(lambda: seen == [0, 1, 2])
        proxy.cut()  # the robust channel consumes again, from offset 3, not from first
        await publish(producer, ("t", 3), ("t", 4))
        await eventually(lambda: len(seen) >= 5, timeout=10)
        await asyncio.sleep(0.3)
        assert seen == [0, 1, 2, 3, 4]
        assert reader.readers[0].cursor_arguments["x-stream-offset"] == 5
        await reader.close()
    finally:
        await proxy.close()


async def test_invalid_payloads_are_skipped_and_counted(make_bus) -> None:
    producer = make_bus(keep=StreamRetention())
    await producer.connect()
    await producer.publish({"order_id": "o-1"}, routing_key="orders.placed")  # no total
    await producer.publish(OrderPlaced(order_id="o-2", total=2))
    got: list[str] = []
    reader = make_bus()

    @reader.replay("orders.placed", name=uid("typed"))
    async def h(order: OrderPlaced) -> None:
        got.append(order.order_id)

    await reader.start()
    await eventually(lambda: got == ["o-2"])
    assert reader.readers[0].error is None


async def test_a_stream_nobody_keeps_is_a_clear_error(make_bus) -> None:
    reader = make_bus()

    @reader.replay("orders.placed", name=uid("lost"))
    async def h(e: dict) -> None: ...

    with pytest.raises(EventsError, match=r"no stream keeps 'orders\.placed'"):
        await reader.start()


async def test_last_offset_of_a_stream(make_bus, raw_connection) -> None:
    bus = make_bus(keep=StreamRetention())
    await bus.connect()
    stream = f"{bus.exchange}.stream"
    assert await last_offset(await raw_connection.channel(), stream, wait=0.5) is None
    await asyncio.gather(*(bus.publish({"n": n}, routing_key="t") for n in range(50)))
    assert await last_offset(await raw_connection.channel(), stream) == 49


# -- command line -----------------------------------------------------------------------


def test_replay_command_prints_kept_events_and_exits(bus_url: str, capsys) -> None:
    from leveret.cli.main import main

    exchange = uid("test.cli")
    bus = EventBus(bus_url, exchange=exchange, keep=StreamRetention())

    async def setup() -> None:
        await bus.connect()
        await publish(bus, ("orders.placed", 0), ("users.new", 1), ("orders.placed", 2))
        await bus.close()

    asyncio.run(setup())
    try:
        common = ["--url", bus_url, "--exchange", exchange]
        started = time.monotonic()
        assert main(["events", "replay", "orders.*", "--from", "first", "--json",
                     *common]) == 0
        assert time.monotonic() - started < 4  # ended at the last offset, not by idling
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert [(x["offset"], x["routing_key"], x["payload"]) for x in lines] == [
            (0, "orders.placed", {"n": 0}), (2, "orders.placed", {"n": 2})]
        assert lines[0]["event_type"] == "orders.placed" and lines[0]["event_id"]

        assert main(["events", "replay", "#", "--from", "1", "--count", "1", *common]) == 0
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 1 and out[0].split()[0] == "1" and "users.new" in out[0]

        assert main(["events", "replay", "#", "--from", "1h", "--json", *common]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 3
        future = (datetime.datetime.now(datetime.UTC)
                  + datetime.timedelta(hours=1)).isoformat()
        assert main(["events", "replay", "#", "--from", future, "--idle", "0.5",
                     *common]) == 0
        assert capsys.readouterr().out == ""
        assert main(["events", "replay", "#", "--from", "next", *common]) == 0
        assert capsys.readouterr().out == ""
        assert main(["events", "replay", "#", "--from", "soon", *common]) == 1
        assert "cannot start a replay at 'soon'" in capsys.readouterr().err
        assert main(["events", "replay", "#", "--url", bus_url,
                     "--exchange", uid("nothing")]) == 1
        assert "no stream keeps" in capsys.readouterr().err
    finally:
        asyncio.run(bus.delete_topology())


def test_tail_command_follows_new_events_until_ctrl_c(bus_url: str) -> None:
    exchange = uid("test.tail")
    bus = EventBus(bus_url, exchange=exchange)
    bus.keep("orders.placed")
    asyncio.run(_connect_and(bus, ("orders.placed", 0)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "leveret", "events", "tail", "orders.placed", "--json",
         "--url", bus_url, "--exchange", exchange], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert "following" in proc.stderr.readline()
        asyncio.run(_connect_and(bus, ("orders.placed", 1), ("orders.placed", 2)))
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [(x["offset"], x["payload"]) for x in lines] == [(1, {"n": 1}), (2, {"n": 2})]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        asyncio.run(bus.delete_topology())


async def _connect_and(bus: EventBus, *events: tuple[str, int]) -> None:
    await bus.connect()
    await publish(bus, *events)
    await bus.close()


# -- units ------------------------------------------------------------------------------


def test_start_points() -> None:
    now = datetime.datetime(2024, 5, 1, 12, 0, 30, 700_000, tzinfo=datetime.UTC)
    noon = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    assert StartPoint.of("first").argument == "first"
    assert StartPoint.of(7).argument == StartPoint.of("7").argument == 7
    assert StartPoint.of("30s", now).since == noon
    assert StartPoint.of(datetime.timedelta(seconds=30), now).argument == noon
    assert StartPoint.of("2024-05-01T14:00:00+02:00").since == noon
    assert StartPoint.of("2024-05-01T12:00:00").since == noon  # naive: UTC
    assert parse_interval("7D") == datetime.timedelta(days=7)
    for bad in ("soon", -1, "1w", True):
        with pytest.raises((ValueError, TypeError)):
            StartPoint.of(bad)
    point = StartPoint.of(noon)
    assert point.too_early(noon - datetime.timedelta(seconds=1))
    assert not point.too_early(noon) and not StartPoint.of("first").too_early(noon)


def test_topic_matching() -> None:
    assert topic_matches("orders.*", "orders.placed")
    assert not topic_matches("orders.*", "orders.placed.eu")
    assert topic_matches("orders.#", "orders") and topic_matches("#", "a.b.c")
    assert topic_matches("a.#.c", "a.x.y.c") and not topic_matches("a.*.c", "a.c")


def test_retention_arguments() -> None:
    assert StreamRetention().arguments() == {"x-queue-type": "stream"}
    assert StreamRetention(max_age="7D", max_length_bytes=5, max_segment_size_bytes=1,
                           ).arguments() == {
        "x-queue-type": "stream", "x-max-age": "7D", "x-max-length-bytes": 5,
        "x-stream-max-segment-size-bytes": 1}
    with pytest.raises(ValueError):
        StreamRetention(max_age="7 days")
    with pytest.raises(ValueError):
        StreamRetention(max_length_bytes=0)


async def test_offset_stores(tmp_path: Path) -> None:
    memory = MemoryOffsetStore()
    path = tmp_path / "sub" / "offsets.json"
    files = FileOffsetStore(path)
    for store in (memory, files):
        assert isinstance(store, OffsetStore)
        assert await store.load("a") is None
        await store.save("a", 3)
        await store.save("b", 10)
        await store.save("a", 4)
        assert await store.load("a") == 4
    assert json.loads(path.read_text()) == {"a": 4, "b": 10}
    assert await FileOffsetStore(path).load("b") == 10  # what a restarted process reads
    assert [p.name for p in path.parent.iterdir()] == ["offsets.json"]  # no temp files


def test_stream_names_per_bus_and_type() -> None:
    bus = EventBus(exchange="shop")
    assert bus.stream_for("orders.placed") is None
    bus.keep("orders.placed")
    assert bus.stream_for("orders.placed") == "shop.stream.orders.placed"
    kept = EventBus(exchange="shop", keep=StreamRetention())
    assert kept.stream_for("orders.*") == "shop.stream"
    with pytest.raises(ValueError):
        kept.replay("t", name="r", start="whenever")
