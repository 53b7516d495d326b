"""Shovels: throughput under ``on-confirm`` beside RabbitMQ's own shovel, and SIGKILL runs.

    PYTHONPATH=src python bench/shovel.py throughput [--messages 50000] [--size 100]
    PYTHONPATH=src python bench/shovel.py kills [--messages 100000]

``throughput``: a queue preloaded with N persistent messages is moved by a shovel with
``ack-mode: on-confirm`` and ``src-delete-after: queue-length``; the time is from the
shovel's PUT to the destination queue holding N messages (polled every 0.1 s):
leveret -> RabbitMQ (a leveret shovel, in the source leveret), RabbitMQ -> RabbitMQ
(RabbitMQ's own shovel plugin, between two vhosts of one private node), leveret ->
leveret, and RabbitMQ -> leveret (a leveret shovel, in the destination). Each leveret is
a ``leveret serve`` child process with a data directory.

``kills``: N messages under ``on-confirm`` while a side is killed with SIGKILL and
restarted: (1) the source leveret (the shovel in the destination leveret, this process),
(2) a private RabbitMQ destination (the shovel in the source leveret, this process),
(3) a leveret destination with a private RabbitMQ source (the shovel in a third leveret,
this process). Every source delivery the shovel sees is recorded (body = sequence number,
``redelivered``); the check: none lost, anything delivered again by the source carries
``redelivered``, nothing arrives more often than the source delivered it; the
``x-shovelled`` header is read on every message that arrived.

RabbitMQ is a PRIVATE node (``shovelbench@localhost``, AMQP 5694, HTTP 15694, data under
/var/tmp/shovel-bench), with rabbitmq_management, rabbitmq_shovel and
rabbitmq_shovel_management; it is stopped and its data removed at the end. The shared
reference RabbitMQ (5673) is never touched.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

import leveret
from leveret.amqp import spec
from leveret.client import connect
from leveret.runtime import shovels as runtime_shovels

BASE = Path("/var/tmp/shovel-bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class RabbitNode:
    """A private RabbitMQ node with the shovel plugins (as bench/streams.py's)."""

    NAME = "shovelbench@localhost"

    def __init__(self, base: Path = BASE / "rabbit", port: int = 5694,
                 http_port: int = 15694) -> None:
        self.base, self.port, self.http_port = base, port, http_port

    def env(self) -> dict[str, str]:
        b = self.base
        return {**os.environ, "RABBITMQ_NODENAME": self.NAME,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.port + 20000),
                "RABBITMQ_MNESIA_BASE": str(b / "mnesia"), "RABBITMQ_LOG_BASE": str(b / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq.conf")}

    def running(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), 0.2):
            return True
        return False

    def start(self) -> float:
        t0 = time.monotonic()
        if self.running():
            return 0.0
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text(
            "[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management].\n")
        (self.base / "rabbitmq.conf").write_text(
            f"management.tcp.port = {self.http_port}\nmanagement.tcp.ip = 127.0.0.1\n")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base.parent)],
                       check=False)
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 180)
        wait_port(self.http_port, 60)
        return time.monotonic() - t0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def vhost_url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        return int((self.base / "mnesia" / f"{self.NAME}.pid").read_text().strip())

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, remove: bool = True) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.NAME, "stop"], env=self.env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)


class LeveretProc:
    """``leveret serve`` as a child process with a data directory."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port, self.http_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(leveret.__file__).parent.parent)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leveret", "serve", "--port", str(self.port),
             "--management-port", str(self.http_port), "--data-dir", str(self.data)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 60)
        wait_port(self.http_port, 30)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


async def api(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    token = base64.b64encode(b"guest:guest").decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as s, \
            s.request(method, base + path, json=body) as r:
        text = await r.text()
        with contextlib.suppress(ValueError):
            return r.status, json.loads(text) if text else None
        return r.status, text


async def publish(url: str, queue: str, n: int, size: int = 100) -> None:
    pad = b"." * max(0, size - 7)
    async with await connect(url) as c:
        ch = await c.channel()
        await ch.queue_declare(queue, durable=True)
        await ch.confirm_select()
        for i in range(n):
            ch.publish(f"{i:07d}".encode() + pad, "", queue,
                       spec.Properties(delivery_mode=2, message_id=str(i)))
            if i % 1000 == 999:
                await ch.wait_unconfirmed(2000)
        await ch.wait_for_confirms()


async def count(url: str, queue: str) -> int:
    try:
        async with await connect(url, connect_timeout=2) as c:
            ch = await c.channel()
            try:
                return int((await ch.queue_declare(queue, passive=True)).message_count)
            except Exception:
                return -1
    except (OSError, TimeoutError, ConnectionError):
        return -2


async def until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError("condition not reached in time")
        await asyncio.sleep(0.1)


async def drain(url: str, queue: str, expect: int, timeout: float = 120
                ) -> list[tuple[bytes, spec.Properties]]:
    got: list[tuple[bytes, spec.Properties]] = []
    async with await connect(url) as c:
        ch = await c.channel()
        await ch.basic_qos(2000)
        enough = asyncio.get_running_loop().create_future()

        def on(tag: int, red: bool, ex: str, key: str, props: bytes, body: bytes) -> None:
            got.append((body[:7], spec.Properties.decode(props) if props else
                        spec.Properties()))
            ch.ack(tag)
            if len(got) >= expect and not enough.done():
                enough.set_result(None)

        await ch.basic_consume(queue, on)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(enough, timeout)
        await asyncio.sleep(1.0)  # duplicates beyond the count show up too
    return got


# -- throughput ------------------------------------------------------------------------------


def shovel_value(src_uri: str, dest_uri: str) -> dict[str, Any]:
    return {"src-uri": src_uri, "src-queue": "bench", "dest-uri": dest_uri,
            "dest-queue": "bench", "ack-mode": "on-confirm",
            "src-delete-after": "queue-length"}


async def timed_shovel(http: str, vhost: str, value: dict[str, Any], dest_url: str,
                       n: int) -> float:
    t0 = time.monotonic()
    status, body = await api(http, "PUT", f"/api/parameters/shovel/{vhost}/bench",
                             {"value": value})
    assert status in (201, 204), (status, body)

    async def arrived() -> bool:
        return await count(dest_url, "bench") >= n
    await until(arrived, 600)
    return time.monotonic() - t0


async def throughput(n: int, size: int) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    rabbit = RabbitNode()
    print(f"RabbitMQ private node started in {rabbit.start():.1f} s", flush=True)
    a, b = LeveretProc(BASE / "lev-a"), LeveretProc(BASE / "lev-b")
    try:
        for v in ("a", "b"):
            await api(rabbit.http, "PUT", f"/api/vhosts/{v}")
            await api(rabbit.http, "PUT", f"/api/permissions/{v}/guest",
                      {"configure": ".*", "write": ".*", "read": ".*"})
        a.start()
        b.start()

        # leveret -> RabbitMQ (the shovel in the source leveret)
        await publish(a.url, "bench", n, size)
        dst = rabbit.vhost_url("b")
        t = await timed_shovel(a.http, "%2f", shovel_value("amqp://", dst), dst, n)
        rows.append(("leveret -> RabbitMQ (leveret shovel, in the source)", t))
        print(rows[-1], flush=True)

        # RabbitMQ -> RabbitMQ (RabbitMQ's shovel, vhost a -> vhost b, one node)
        await api(rabbit.http, "DELETE", "/api/queues/b/bench")
        await publish(rabbit.vhost_url("a"), "bench", n, size)
        t = await timed_shovel(rabbit.http, "a", shovel_value("amqp:///a", "amqp:///b"),
                               rabbit.vhost_url("b"), n)
        rows.append(("RabbitMQ -> RabbitMQ (RabbitMQ 3.10.8 shovel, vhost a -> b)", t))
        print(rows[-1], flush=True)

        # leveret -> leveret (the shovel in the source leveret)
        await publish(a.url, "bench2", n, size)
        v = shovel_value("amqp://", b.url)
        v["src-queue"] = "bench2"
        t = await timed_shovel(a.http, "%2f", v, b.url, n)
        rows.append(("leveret -> leveret (leveret shovel, in the source)", t))
        print(rows[-1], flush=True)

        # RabbitMQ -> leveret (the shovel in the destination leveret)
        await api(rabbit.http, "DELETE", "/api/queues/b/bench")
        await publish(rabbit.vhost_url("b"), "bench", n, size)
        await api(b.http, "DELETE", "/api/queues/%2f/bench")
        v = shovel_value(rabbit.vhost_url("b"), "amqp://")
        t = await timed_shovel(b.http, "%2f", v, b.url, n)
        rows.append(("RabbitMQ -> leveret (leveret shovel, in the destination)", t))
        print(rows[-1], flush=True)
    finally:
        a.stop()
        b.stop()
        rabbit.stop()
        for d in ("lev-a", "lev-b"):
            shutil.rmtree(BASE / d, ignore_errors=True)
    print(f"\n{n:,} persistent messages of {size} B, ack-mode on-confirm, "
          "src-prefetch-count 1000 (both defaults)\n")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min)\n")
    print("| shovel | seconds | msg/s |\n|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.1f} | {n / t:,.0f} |")
    return rows


# -- kills -----------------------------------------------------------------------------------


def record_source_deliveries() -> list[tuple[bytes, bool]]:
    seen: list[tuple[bytes, bool]] = []
    original = runtime_shovels._Transfer.deliver

    def deliver(self: Any, tag: int, redelivered: bool, exchange: str, key: str,
                props: bytes, body: bytes) -> None:
        seen.append((body[:7], redelivered))
        original(self, tag, redelivered, exchange, key, props, body)

    runtime_shovels._Transfer.deliver = deliver  # type: ignore[method-assign]
    return seen


def check(name: str, seen: list[tuple[bytes, bool]],
          got: list[tuple[bytes, spec.Properties]], n: int, at_kill: int) -> dict[str, Any]:
    ids = [int(b) for b, _ in got]
    lost = set(range(n)) - set(ids)
    first: set[bytes] = set()
    unflagged = 0
    for body, red in seen:
        if body in first and not red:
            unflagged += 1
        first.add(body)
    delivered = Counter(b for b, _ in seen)
    excess = sum(1 for b, k in Counter(b for b, _ in got).items() if k > delivered[b])
    shovelled = sum(1 for _, p in got if p.headers and p.headers.get("x-shovelled"))
    row = {"scenario": name, "messages": n, "moved when killed": at_kill,
           "arrived": len(ids), "lost": len(lost), "duplicates": len(ids) - len(set(ids)),
           "redelivered by the source": sum(1 for _, r in seen if r),
           "delivered again without redelivered": unflagged,
           "arrived more often than delivered": excess,
           "with x-shovelled": shovelled}
    print(json.dumps(row), flush=True)
    return row


async def kill_source(n: int, seen: list[tuple[bytes, bool]]) -> dict[str, Any]:
    """Source leveret (child process) killed; the shovel in the destination leveret."""
    seen.clear()
    src = LeveretProc(BASE / "kill-src")
    src.start()
    try:
        await publish(src.url, "q", n)
        dst = leveret.Broker(port=0, management_port=0, data_dir=BASE / "kill-dst")
        await dst.start()
        try:
            assert dst.management_url is not None
            await api(dst.management_url.rstrip("/"), "PUT", "/api/parameters/shovel/%2f/k",
                      {"value": {"src-uri": src.url, "src-queue": "q", "dest-uri": "amqp://",
                                 "dest-queue": "q", "ack-mode": "on-confirm",
                                 "reconnect-delay": 0.5, "dest-add-forward-headers": True}})

            async def some() -> bool:
                return await count(dst.url, "q") >= n * 4 // 10
            await until(some, 300)
            src.kill9()
            at_kill = await count(dst.url, "q")
            src.start()

            async def emptied() -> bool:
                return await count(src.url, "q") == 0
            await until(emptied, 600)
            await asyncio.sleep(1)
            got = await drain(dst.url, "q", n)
            return check("kill -9 of the source leveret (shovel in the destination leveret)",
                         seen, got, n, at_kill)
        finally:
            await dst.stop()
    finally:
        src.stop()
        shutil.rmtree(BASE / "kill-src", ignore_errors=True)
        shutil.rmtree(BASE / "kill-dst", ignore_errors=True)


async def kill_rabbit_dest(n: int, seen: list[tuple[bytes, bool]],
                           rabbit: RabbitNode) -> dict[str, Any]:
    """leveret (this process, the shovel in it) -> private RabbitMQ, RabbitMQ killed."""
    seen.clear()
    await api(rabbit.http, "DELETE", "/api/queues/%2f/q")
    src = leveret.Broker(port=0, management_port=0, data_dir=BASE / "kill-src2")
    await src.start()
    try:
        assert src.management_url is not None
        await publish(src.url, "q", n)
        await api(src.management_url.rstrip("/"), "PUT", "/api/parameters/shovel/%2f/k",
                  {"value": {"src-uri": "amqp://", "src-queue": "q", "dest-uri": rabbit.url,
                             "dest-queue": "q", "ack-mode": "on-confirm",
                             "reconnect-delay": 1, "dest-add-forward-headers": True}})

        async def some() -> bool:
            return await count(rabbit.url, "q") >= n * 4 // 10
        await until(some, 300)
        rabbit.kill9()
        at_kill = await count(src.url, "q")
        print(f"RabbitMQ killed, {at_kill} left at the source; restarting", flush=True)
        print(f"RabbitMQ restarted in {rabbit.start():.1f} s", flush=True)

        async def emptied() -> bool:
            return await count(src.url, "q") == 0
        await until(emptied, 600)
        await asyncio.sleep(1)
        got = await drain(rabbit.url, "q", n)
        return check("kill -9 of RabbitMQ, the destination (shovel in the source leveret)",
                     seen, got, n, n - at_kill)
    finally:
        await src.stop()
        shutil.rmtree(BASE / "kill-src2", ignore_errors=True)


async def kill_leveret_dest(n: int, seen: list[tuple[bytes, bool]],
                            rabbit: RabbitNode) -> dict[str, Any]:
    """Private RabbitMQ -> leveret (child process) killed; the shovel in a third leveret."""
    seen.clear()
    await api(rabbit.http, "DELETE", "/api/queues/%2f/q2")
    await publish(rabbit.url, "q2", n)
    dst = LeveretProc(BASE / "kill-dst3")
    dst.start()
    third = leveret.Broker(port=0, management_port=0)
    await third.start()
    try:
        assert third.management_url is not None
        await api(third.management_url.rstrip("/"), "PUT", "/api/parameters/shovel/%2f/k",
                  {"value": {"src-uri": rabbit.url, "src-queue": "q2", "dest-uri": dst.url,
                             "dest-queue": "q2", "ack-mode": "on-confirm",
                             "reconnect-delay": 0.5, "dest-add-forward-headers": True}})

        async def some() -> bool:
            return await count(dst.url, "q2") >= n * 4 // 10
        await until(some, 300)
        dst.kill9()
        at_kill = n - await count(rabbit.url, "q2")
        dst.start()

        async def emptied() -> bool:
            return await count(rabbit.url, "q2") == 0
        await until(emptied, 600)
        await asyncio.sleep(1)
        got = await drain(dst.url, "q2", n)
        return check("kill -9 of the destination leveret, RabbitMQ the source (shovel in a "
                     "third leveret)", seen, got, n, at_kill)
    finally:
        await third.stop()
        dst.stop()
        shutil.rmtree(BASE / "kill-dst3", ignore_errors=True)


async def kills(n: int, which: list[str]) -> None:
    seen = record_source_deliveries()
    rows = []
    if "source" in which:
        rows.append(await kill_source(n, seen))
    if "rabbit" in which or "leveret-dest" in which:
        rabbit = RabbitNode()
        print(f"RabbitMQ private node started in {rabbit.start():.1f} s", flush=True)
        try:
            if "rabbit" in which:
                rows.append(await kill_rabbit_dest(n, seen, rabbit))
            if "leveret-dest" in which:
                rows.append(await kill_leveret_dest(n, seen, rabbit))
        finally:
            rabbit.stop()
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["throughput", "kills"])
    p.add_argument("--messages", type=int, default=None)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--only", default="source,rabbit,leveret-dest",
                   help="kills: which of source,rabbit,leveret-dest")
    args = p.parse_args()
    BASE.mkdir(parents=True, exist_ok=True)
    if args.mode == "throughput":
        asyncio.run(throughput(args.messages or 50_000, args.size))
    else:
        asyncio.run(kills(args.messages or 100_000, args.only.split(",")))


if __name__ == "__main__":
    main()
