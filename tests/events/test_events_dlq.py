"""Dead-letter queues: peek without consuming, redrive (all, some, by id), purge; from
Python and from ``leveret events dlq``."""

from __future__ import annotations

import asyncio
import json

from events_helpers import uid, wait_length
from prometheus_client import CollectorRegistry

from leveret.cli.main import main
from leveret.events import NO_RETRY, Delivery, EventBus, Metrics
from leveret.events.testing import eventually


async def test_peek_redrive_and_purge(make_bus, raw_connection) -> None:
    bus = make_bus()
    group = uid("billing")
    healthy = False
    handled: list[tuple[int, int]] = []

    @bus.subscribe("orders.placed", group=group, retry=NO_RETRY)
    async def bill(e: dict, d: Delivery) -> None:
        if not healthy:
            raise RuntimeError("ledger offline")
        handled.append((e["n"], d.attempt))

    await bus.start()
    ids = [await bus.publish({"n": n}, routing_key="orders.placed") for n in range(4)]
    dlq = bus.dead_letters(group)
    await wait_length(raw_connection, f"{group}.dlq", 4)

    letters = await dlq.peek(limit=10)
    assert [letter.event_id for letter in letters] == ids  # oldest first
    assert await dlq.count() == 4  # peeking left them there
    assert json.loads(letters[0].body) == {"n": 0}
    assert letters[0].as_dict()["error"] == "RuntimeError: ledger offline"

    healthy = True
    assert await dlq.redrive(event_ids={ids[2]}) == 1
    await eventually(lambda: handled == [(2, 1)])  # attempt count starts again
    assert [letter.event_id for letter in await dlq.peek()] == [ids[0], ids[1], ids[3]]
    assert await dlq.redrive(limit=1) == 1
    await eventually(lambda: len(handled) == 2)
    assert await dlq.purge() == 2
    assert await dlq.count() == 0


async def test_a_redriven_event_that_fails_again_keeps_its_history(make_bus) -> None:
    bus = make_bus()
    group = uid("stubborn")

    @bus.subscribe("t", group=group, retry=NO_RETRY)
    async def fail(e: dict) -> None:
        raise RuntimeError("still broken")

    await bus.start()
    await bus.publish({}, routing_key="t")
    dlq = bus.dead_letters(group)
    await eventually(dlq.count)
    assert await dlq.redrive() == 1
    await eventually(dlq.count)
    [letter] = await dlq.peek()
    assert letter.redrives == 1
    assert [h["attempt"] for h in letter.history] == [1, 1]


def test_dlq_command_line(bus_url: str, capsys) -> None:
    group = uid("cli")
    bus = EventBus(bus_url, exchange=uid("cli.events"),
                   metrics=Metrics(CollectorRegistry()))
    handled: list[int] = []
    state = {"healthy": False}

    @bus.subscribe("t", group=group, retry=NO_RETRY)
    async def handle(e: dict) -> None:
        if not state["healthy"]:
            raise RuntimeError("disk full")
        handled.append(e["n"])

    async def publish_failures() -> list[str]:
        await bus.start()
        ids = [await bus.publish({"n": n}, routing_key="t") for n in range(3)]
        await wait_length(bus.connection, f"{group}.dlq", 3)
        await bus.close()
        return ids

    ids = asyncio.run(publish_failures())
    try:
        assert main(["events", "dlq", "list", "--url", bus_url, "--group", group,
                     "--group", uid("missing")]) == 0
        out = capsys.readouterr().out
        assert f"{group}.dlq" in out and " 3\n" in out and "(no queue)" in out

        assert main(["events", "dlq", "show", group, "--url", bus_url, "--json"]) == 0
        shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [s["event_id"] for s in shown] == ids
        assert shown[0]["error"] == "RuntimeError: disk full"
        assert shown[0]["history"][0]["attempt"] == 1

        assert main(["events", "dlq", "show", group, "--url", bus_url, "--limit", "1"]) == 0
        out = capsys.readouterr().out
        assert f"event {ids[0]}" in out and "error: RuntimeError: disk full" in out

        assert main(["events", "dlq", "purge", group, "--url", bus_url]) == 2  # no --yes
        assert "3 dead letter(s)" in capsys.readouterr().err

        state["healthy"] = True

        async def redrive_with_worker() -> None:
            await bus.start()
            code = await asyncio.to_thread(
                main, ["events", "dlq", "redrive", group, "--url", bus_url, "--id", ids[1]])
            assert code == 0
            await eventually(lambda: handled == [1])
            await bus.close()

        asyncio.run(redrive_with_worker())
        assert "redrove 1 dead letter(s)" in capsys.readouterr().out
        assert main(["events", "dlq", "purge", group, "--url", bus_url, "--yes"]) == 0
        assert "purged 2 dead letter(s)" in capsys.readouterr().out
        assert main(["events", "dlq", "show", uid("nothing"), "--url", bus_url]) == 1
    finally:
        asyncio.run(bus.delete_topology())
