"""Workers: graceful shutdown (stop taking, finish in-flight, requeue the rest),
reconnection without losing or duplicating acknowledged work, and ``leveret events run``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from events_helpers import metric, uid, wait_length
from events_proxy import Proxy

from leveret.events import Delivery
from leveret.events.testing import eventually
from leveret.runtime.threaded import BrokerThread


async def test_graceful_stop_finishes_in_flight_and_requeues_the_rest(
        make_bus, raw_connection) -> None:
    group = uid("orders")
    started: list[int] = []
    finished: list[int] = []
    bus = make_bus(prefetch=10, concurrency=1)

    @bus.subscribe("t", group=group)
    async def slow(e: dict) -> None:
        started.append(e["n"])
        await asyncio.sleep(0.3)
        finished.append(e["n"])

    await bus.start()
    for n in range(5):
        await bus.publish({"n": n}, routing_key="t")
    await eventually(lambda: started)
    await bus.close(timeout=5)
    assert finished == started == [0]  # the running one finished; none started after
    await wait_length(raw_connection, group, 4)  # the prefetched rest went back

    again: list[tuple[int, bool]] = []
    second = make_bus()

    @second.subscribe("t", group=group)
    async def rest(e: dict, d: Delivery) -> None:
        again.append((e["n"], d.redelivered))

    await second.start()
    await eventually(lambda: len(again) == 4)
    assert [n for n, _ in again] == [1, 2, 3, 4]


async def test_handlers_past_the_timeout_are_cancelled_and_requeued(
        make_bus, raw_connection) -> None:
    group = uid("stuck")
    bus = make_bus()
    cancelled: list[bool] = []

    @bus.subscribe("t", group=group)
    async def stuck(e: dict) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    await bus.start()
    await bus.publish({}, routing_key="t")
    await eventually(lambda: bus._consumers[0].inflight.busy)
    await bus.close(timeout=0.2)
    assert cancelled == [True]
    await wait_length(raw_connection, group, 1)


async def test_reconnects_without_losing_or_duplicating_work(make_bus, bus_url,
                                                             registry) -> None:
    proxy = await Proxy(bus_url).start()
    try:
        group = uid("resilient")
        handled: list[str] = []
        release = asyncio.Event()
        bus = make_bus(url=proxy.url)

        @bus.subscribe("t", group=group)
        async def handle(e: dict, d: Delivery) -> None:
            if e["n"] == 1:
                await release.wait()  # the connection drops while this one runs
            handled.append(d.event_id)

        await bus.start()
        await bus.publish({"n": 0}, routing_key="t", event_id="e0")
        await eventually(lambda: handled == ["e0"])
        await bus.publish({"n": 1}, routing_key="t", event_id="e1")
        await asyncio.sleep(0.1)
        proxy.cut()  # like a broker restart, for the client
        release.set()  # e1 completes, but its ack cannot reach the broker
        # publishing right away: publish waits for the reconnection and publishes again
        for n in range(2, 5):
            await bus.publish({"n": n}, routing_key="t", event_id=f"e{n}")
        await eventually(lambda: len(handled) == 5, timeout=10)
        await asyncio.sleep(0.2)
        # e1 was redelivered after the reconnection and skipped as a duplicate
        assert handled == ["e0", "e1", "e2", "e3", "e4"]
        assert metric(registry, "leveret_events_duplicates_total", group) == 1
        await bus.close()
    finally:
        await proxy.close()


async def test_survives_a_leveret_restart(unused_tcp_port: int) -> None:
    from leveret.events import EventBus

    got: list[str] = []
    bus = EventBus(f"amqp://guest:guest@127.0.0.1:{unused_tcp_port}/",
                   exchange=uid("restart"), reconnect_interval=0.1)

    @bus.subscribe("t", group=uid("durable"))
    async def handle(e: dict, d: Delivery) -> None:
        got.append(d.event_id)

    with BrokerThread(port=unused_tcp_port):
        await bus.start()
        await bus.publish({}, routing_key="t", event_id="before")
        await eventually(lambda: got == ["before"])
    with BrokerThread(port=unused_tcp_port):  # a new, empty broker on the same port
        await eventually(lambda: bus.connection.connected.is_set(), timeout=10)

        async def published() -> bool:
            try:  # the exchange and the group's queue were declared again on reconnect
                await bus.publish({}, routing_key="t", event_id="after", mandatory=True,
                                  timeout=2)
                return True
            except Exception:
                return False

        await eventually(published, timeout=10, interval=0.2)
        await eventually(lambda: got == ["before", "after"])
        await bus.close()


APP = textwrap.dedent('''
    from leveret.events import EventBus, Delivery
    bus = EventBus(exchange={exchange!r})

    @bus.subscribe("t", group={group!r})
    async def handle(e: dict, d: Delivery) -> None:
        print("handled", d.event_id, flush=True)
''')


def test_leveret_events_run_handles_events_and_stops_on_sigterm(
        bus_url: str, tmp_path: Path) -> None:
    exchange, group = uid("cli.run"), uid("cli-run")
    (tmp_path / "runapp.py").write_text(APP.format(exchange=exchange, group=group))
    env = {**os.environ, "LEVERET_EVENTS_URL": bus_url}
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "events", "run", "runapp:bus",
                             "--shutdown-timeout", "2"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            if "worker" in line and "started" in line:
                break
        else:
            pytest.fail("the worker did not start")

        async def publish() -> None:
            from leveret.events import EventBus

            bus = EventBus(bus_url, exchange=exchange)
            await bus.connect()
            await bus.publish({}, routing_key="t", event_id="via-cli")
            await bus.close()

        asyncio.run(publish())
        assert proc.stdout.readline().strip() == "handled via-cli"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "worker stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        from leveret.events import EventBus

        cleanup = EventBus(bus_url, exchange=exchange)
        cleanup.subscribe("t", group=group)(lambda e: None)
        asyncio.run(cleanup.delete_topology())


def test_failures_are_logged_with_the_event_id(caplog, bus_url) -> None:
    from leveret.events import NO_RETRY, EventBus

    bus = EventBus(bus_url, exchange=uid("log"))
    group = uid("logged")

    @bus.subscribe("t", group=group, retry=NO_RETRY)
    async def fail(e: dict) -> None:
        raise RuntimeError("kaput")

    async def run() -> None:
        async with bus:
            await bus.publish({}, routing_key="t", event_id="evt-logged")
            await eventually(lambda: any("evt-logged" in r.getMessage()
                                         for r in caplog.records))
        await bus.delete_topology()

    with caplog.at_level(logging.WARNING, logger="leveret.events"):
        asyncio.run(run())
    [record] = [r for r in caplog.records if "evt-logged" in r.getMessage()]
    assert "kaput" in record.getMessage() and group in record.getMessage()
