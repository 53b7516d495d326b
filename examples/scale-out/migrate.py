"""The docs/scale-out.md walk-through, end to end: a leveret.events application moves from
a running leveret to RabbitMQ without stopping its publisher, and no event is lost.

    python examples/scale-out/migrate.py AMQP_URL HTTP_URL
    # e.g. amqp://guest:guest@127.0.0.1:5695/ http://127.0.0.1:15695  (a RabbitMQ node)

It starts ``leveret serve`` itself (fresh data directory), runs the application there
(a publisher of ``orders.placed`` events at ~300/s, a ``billing`` subscriber slower than
that, so a backlog builds), then: exports the definitions with ``leveret export``, imports
them into RabbitMQ with ``leveret import --url`` (RabbitMQ's ``POST /api/definitions``),
switches the publisher's URL, moves the subscriber, and drains the old queues with one
shovel per queue (``src-delete-after: queue-length``, ``ack-mode: on-confirm``). At the end
every published event id must have been handled.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from leveret.events import EventBus, event


@event("orders.placed")
@dataclasses.dataclass
class OrderPlaced:
    order_id: int
    total: float


handled: list[int] = []


def make_consumer(url: str) -> EventBus:
    bus = EventBus(url, name="billing-service", prefetch=20)

    @bus.subscribe("orders.*", group="billing")
    async def bill(order: OrderPlaced) -> None:
        handled.append(order.order_id)
        await asyncio.sleep(0.005)  # ~200/s: slower than the publisher

    return bus


class Publisher:
    """Publishes order i every ~3 ms to whichever URL it currently has."""

    def __init__(self, url: str) -> None:
        self.bus = EventBus(url, name="order-service")
        self.sent: list[int] = []
        self.stopped = False
        self.lock = asyncio.Lock()

    async def run(self) -> None:
        await self.bus.connect()
        i = 0
        while not self.stopped:
            async with self.lock:
                await self.bus.publish(OrderPlaced(order_id=i, total=9.5))
            self.sent.append(i)
            i += 1
            await asyncio.sleep(0.003)

    async def switch(self, url: str) -> None:
        """The new URL for the next publish; what was published is confirmed."""
        new = EventBus(url, name="order-service")
        await new.connect()
        async with self.lock:
            old, self.bus = self.bus, new
        await old.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def api(base: str, method: str, path: str, body: Any = None) -> Any:
    token = base64.b64encode(b"guest:guest").decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as s, \
            s.request(method, base.rstrip("/") + path, json=body) as r:
        text = await r.text()
        assert r.status < 300, (method, path, r.status, text)
        return json.loads(text) if text else None


def leveret_cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "leveret", *args], capture_output=True,
                         text=True, check=True)
    return out.stdout


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def main(rabbit_amqp: str, rabbit_http: str) -> int:
    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    port, http_port = free_port(), free_port()
    old_amqp = f"amqp://guest:guest@127.0.0.1:{port}/"
    old_http = f"http://127.0.0.1:{http_port}"
    server = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(port),
                               "--management-port", str(http_port), "--data-dir",
                               str(work / "data")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", http_port), 0.2):
                break
            await asyncio.sleep(0.05)

        # 1. the application runs on leveret
        consumer = make_consumer(old_amqp)
        await consumer.start()
        pub = Publisher(old_amqp)
        pub_task = asyncio.create_task(pub.run())
        await asyncio.sleep(5)
        say(f"on leveret: {len(pub.sent)} published, {len(handled)} handled")

        # 2. definitions: leveret export -> RabbitMQ import
        defs = work / "definitions.json"
        leveret_cli("export", "definitions", str(defs), "--url", old_http)
        d = json.loads(defs.read_text())
        say("exported: " + ", ".join(f"{len(v)} {k}" for k, v in d.items()
                                     if isinstance(v, list)))
        say("queues: " + ", ".join(q["name"] for q in d["queues"]))
        leveret_cli("import", "definitions", str(defs), "--url", rabbit_http)
        names = {q["name"] for q in await api(rabbit_http, "GET", "/api/queues/%2f")}
        assert {q["name"] for q in d["queues"]} <= names, names
        say("imported into RabbitMQ")

        # 3. the publisher switches URL (no pause: each publish is confirmed)
        await pub.switch(rabbit_amqp)
        switched_at = len(pub.sent)
        say(f"publisher on RabbitMQ after {switched_at} events on leveret")

        # 4. the consumer moves
        await consumer.close()
        consumer = make_consumer(rabbit_amqp)
        await consumer.start()
        say(f"consumer on RabbitMQ; {len(handled)} handled on leveret")

        # 5. shovels drain what is left in leveret's queues
        queues = await api(old_http, "GET", "/api/queues/%2f")
        backlog = {q["name"]: q["messages"] for q in queues if q["messages"]}
        say(f"left on leveret: {backlog}")
        for name in backlog:
            await api(old_http, "PUT", f"/api/parameters/shovel/%2f/drain-{name}", {"value": {
                "src-uri": "amqp://", "src-queue": name, "dest-uri": rabbit_amqp,
                "dest-queue": name, "ack-mode": "on-confirm",
                "src-delete-after": "queue-length", "dest-add-forward-headers": True}})
        t0 = time.monotonic()
        while await api(old_http, "GET", "/api/parameters/shovel"):
            await asyncio.sleep(0.2)
        say(f"shovels done in {time.monotonic() - t0:.1f} s and deleted themselves")
        left = {q["name"]: q["messages"] for q in await api(old_http, "GET", "/api/queues/%2f")}
        say(f"leveret's queues now: {left}")

        # 6. more traffic on RabbitMQ, then stop and check
        await asyncio.sleep(3)
        pub.stopped = True
        await pub_task
        await pub.bus.close()
        deadline = time.monotonic() + 120
        while set(handled) != set(pub.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await consumer.close()
        lost = set(pub.sent) - set(handled)
        dupes = len(handled) - len(set(handled))
        say(f"published {len(pub.sent)} ({switched_at} to leveret), handled "
            f"{len(set(handled))} distinct, {len(lost)} lost, {dupes} handled twice")
        return 0 if not lost and not any(left.values()) else 1
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
