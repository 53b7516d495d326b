"""Shovels: throughput under ``on-confirm`` beside RabbitMQ's own shovel, and SIGKILL runs.

    PYTHONPATH=src python bench/shovel.py throughput [--messages 50000] [--size 100]
    PYTHONPATH=src python bench/shovel.py kills [--messages 100000] [--scenario all|ll-src,...]

``throughput``: a queue preloaded with N persistent messages is moved by a shovel with
``ack-mode: on-confirm`` and ``src-delete-after: queue-length``; the time is from the
shovel's PUT to the destination queue holding N messages (polled every 0.1 s):
leveret -> RabbitMQ (a leveret shovel, in the source leveret), RabbitMQ -> RabbitMQ
(RabbitMQ's own shovel plugin, between two vhosts of one private node), leveret ->
leveret, and RabbitMQ -> leveret (a leveret shovel, in the destination). Each leveret is
a ``leveret serve`` child process with a data directory.

``kills``: N persistent messages moved under ``on-confirm`` while one side is killed with
SIGKILL when ~40% has moved, and restarted (a leveret from its data directory): all six
combinations of leveret -> leveret, leveret -> RabbitMQ and RabbitMQ -> leveret with either
side killed, the shovel where a user would run it (leveret -> RabbitMQ: in the source;
RabbitMQ -> leveret: in the destination), plus the other placements (``--scenario`` picks
some; see ``SCENARIOS``). When the killed side hosts the shovel, the restarted broker must
start it again from its durable parameter. Each leveret is a ``leveret serve`` child
process; the one hosting the shovel records every source delivery it sees (body = sequence
number, ``redelivered``) in a file. The check: none lost, anything delivered again by the
source carries ``redelivered``, nothing arrives more often than the source delivered it,
the shovel saw each message, every arrival has ``x-shovelled``. A failure is printed as
FAILED and the exit status is 1.

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
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from nodes import RabbitNode, free_port, wait_port

import leveret
from leveret.amqp import spec
from leveret.client import connect
from leveret.runtime import shovels as runtime_shovels

BASE = Path("/var/tmp/shovel-bench")


def shovel_node() -> RabbitNode:
    """A private RabbitMQ node with the shovel plugins."""
    return RabbitNode("shovelbench@localhost", BASE / "rabbit", 5694, 15694, plugins=(
        "rabbitmq_management", "rabbitmq_shovel", "rabbitmq_shovel_management"))


class LeveretProc:
    """``leveret serve`` as a child process with a data directory; with ``record``, its
    shovels' source deliveries are appended to that file (``serve_recording``)."""

    def __init__(self, data: Path, port: int | None = None, http_port: int | None = None,
                 record: Path | None = None) -> None:
        self.data, self.record = data, record
        self.port, self.http_port = port or free_port(), http_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(leveret.__file__).parent.parent)}
        serve = ["serve", "--port", str(self.port), "--management-port",
                 str(self.http_port), "--data-dir", str(self.data)]
        run = ([str(Path(__file__).resolve()), "serve-recording", str(self.record)]
               if self.record is not None else ["-m", "leveret"])
        with open(self.data.parent / f"{self.data.name}.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, *run, *serve], env=env,
                                         stdout=subprocess.DEVNULL, stderr=log)
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


async def drain(url: str, queue: str, n: int, timeout: float = 300
                ) -> list[tuple[bytes, spec.Properties]]:
    """Consume until each of the n messages arrived at least once (a count is not enough:
    duplicates make it up while the last messages are still on their way), then a second
    more for late duplicates; a lost message shows as the timeout's shortfall."""
    got: list[tuple[bytes, spec.Properties]] = []
    distinct: set[bytes] = set()
    async with await connect(url) as c:
        ch = await c.channel()
        await ch.basic_qos(2000)
        complete = asyncio.get_running_loop().create_future()

        def on(tag: int, red: bool, ex: str, key: str, props: bytes, body: bytes) -> None:
            got.append((body[:7], spec.Properties.decode(props) if props else
                        spec.Properties()))
            distinct.add(body[:7])
            ch.ack(tag)
            if len(distinct) >= n and not complete.done():
                complete.set_result(None)

        await ch.basic_consume(queue, on)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(complete, timeout)
        await asyncio.sleep(1.0)
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
    rabbit = shovel_node()
    print(f"RabbitMQ private node started in {rabbit.start():.1f} s", flush=True)
    a, b = LeveretProc(BASE / "lev-a"), LeveretProc(BASE / "lev-b")
    try:
        for vhost in ("a", "b"):
            await api(rabbit.http, "PUT", f"/api/vhosts/{vhost}")
            await api(rabbit.http, "PUT", f"/api/permissions/{vhost}/guest",
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
        rabbit.stop(remove=True)
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


class Scenario(NamedTuple):
    """One cell of the kill matrix: which broker is on each side, which side is killed,
    and which leveret runs the shovel (``source``, ``dest`` or ``third``)."""

    source: str  # "leveret" or "RabbitMQ"
    dest: str
    killed: str  # "source" or "dest"
    host: str

    @property
    def title(self) -> str:
        side = "the source" if self.killed == "source" else "the destination"
        who = getattr(self, self.killed)
        where = {"source": "in the source leveret", "dest": "in the destination leveret",
                 "third": "in a third leveret"}[self.host]
        hosting = ", which restarts it from its parameter" if self.host == self.killed else ""
        return (f"{self.source} -> {self.dest}: kill -9 of {side} {who} "
                f"(shovel {where}{hosting})")


# Each combination with the shovel where a user would run it (RabbitMQ -> leveret: in the
# destination; leveret -> RabbitMQ: in the source), then the other placements worth a run.
SCENARIOS: dict[str, Scenario] = {
    "ll-src": Scenario("leveret", "leveret", "source", "dest"),
    "ll-dest": Scenario("leveret", "leveret", "dest", "source"),
    "lr-src": Scenario("leveret", "RabbitMQ", "source", "source"),
    "lr-dest": Scenario("leveret", "RabbitMQ", "dest", "source"),
    "rl-src": Scenario("RabbitMQ", "leveret", "source", "dest"),
    "rl-dest": Scenario("RabbitMQ", "leveret", "dest", "dest"),
    "ll-src-host": Scenario("leveret", "leveret", "source", "source"),
    "ll-dest-host": Scenario("leveret", "leveret", "dest", "dest"),
    "rl-dest-third": Scenario("RabbitMQ", "leveret", "dest", "third"),
}
# Fixed ports (this worktree's range) so a killed leveret comes back where the shovel
# looks for it.
KILL_PORTS = {"source": (5820, 15820), "dest": (5821, 15821), "third": (5822, 15822)}
RECORD = struct.Struct("7s?")  # a source delivery as the shovel saw it: body[:7], redelivered


def serve_recording(record: str, argv: list[str]) -> int:
    """``leveret serve`` with every source delivery its shovels receive appended to
    ``record`` — one unbuffered write each, so a SIGKILL loses no record of a delivery
    the shovel went on to publish."""
    from leveret.cli.main import main as leveret_main

    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    original = runtime_shovels._Transfer.deliver

    def deliver(self: Any, tag: int, redelivered: bool, exchange: str, key: str,
                props: bytes, body: bytes) -> None:
        os.write(fd, RECORD.pack(body[:7], redelivered))
        original(self, tag, redelivered, exchange, key, props, body)

    runtime_shovels._Transfer.deliver = deliver  # type: ignore[method-assign]
    return leveret_main(argv)


def read_record(path: Path) -> list[tuple[bytes, bool]]:
    data = path.read_bytes() if path.exists() else b""
    return [RECORD.unpack_from(data, i) for i in range(0, len(data) - RECORD.size + 1,
                                                         RECORD.size)]


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
           "source deliveries": len(seen), "arrived": len(ids), "lost": len(lost),
           "duplicates": len(ids) - len(set(ids)),
           "redelivered by the source": sum(1 for _, r in seen if r),
           "delivered again without redelivered": unflagged,
           "arrived more often than delivered": excess,
           "with x-shovelled": shovelled}
    # Every delivery accounted for: the shovel saw each of the n messages, nothing else.
    row["failures"] = [what for what, bad in (
        (f"{len(lost)} lost (first: {sorted(lost)[:5]})", lost),
        (f"{unflagged} delivered again without redelivered", unflagged),
        (f"{excess} arrived more often than the source delivered them", excess),
        (f"the shovel saw {len(first)} distinct messages, not {n}",
         first != {f'{i:07d}'.encode() for i in range(n)}),
        (f"{len(ids) - shovelled} arrived without x-shovelled", shovelled != len(ids)),
    ) if bad]
    print(json.dumps(row), flush=True)
    return row


async def shovel_state(http: str, name: str) -> str:
    status, rows = await api(http, "GET", "/api/shovels")
    if status != 200:
        return f"HTTP {status}"
    return next((r["state"] for r in rows if r["name"] == name), "absent")


async def run_kill(key: str, sc: Scenario, n: int, rabbit: RabbitNode | None
                   ) -> dict[str, Any]:
    """Publish n to the source, start the shovel where ``sc.host`` says, SIGKILL
    ``sc.killed`` when ~40% moved, restart it (leveret from its data directory), wait
    until the source is empty, drain the destination and check every delivery."""
    queue, record = f"kill-{key}", BASE / f"{key}.record"
    record.unlink(missing_ok=True)
    kinds = {"source": sc.source, "dest": sc.dest, "third": "leveret"}
    roles = ["source", "dest"] + (["third"] if sc.host == "third" else [])
    levs = {role: LeveretProc(BASE / f"{key}-{role}", *KILL_PORTS[role],
                              record=record if role == sc.host else None)
            for role in roles if kinds[role] == "leveret"}
    url = {role: levs[role].url if role in levs else rabbit.url  # type: ignore[union-attr]
           for role in roles}
    for lev in levs.values():  # each run's own logs (left for a look afterwards)
        (lev.data.parent / f"{lev.data.name}.log").unlink(missing_ok=True)
    try:
        for lev in levs.values():
            lev.start()
        if rabbit is not None:
            await api(rabbit.http, "DELETE", f"/api/queues/%2f/{queue}")
        await publish(url["source"], queue, n)
        host = levs[sc.host].http
        status, body = await api(host, "PUT", "/api/parameters/shovel/%2f/k", {"value": {
            "src-uri": "amqp://" if sc.host == "source" else url["source"],
            "src-queue": queue,
            "dest-uri": "amqp://" if sc.host == "dest" else url["dest"],
            "dest-queue": queue, "ack-mode": "on-confirm", "reconnect-delay": 0.5,
            "dest-add-forward-headers": True}})
        assert status in (201, 204), (status, body)

        async def some() -> bool:
            return await count(url["dest"], queue) >= n * 4 // 10
        await until(some, 300)
        t0 = time.monotonic()
        if sc.killed in levs:
            levs[sc.killed].kill9()
        else:
            assert rabbit is not None
            rabbit.kill9()
        other = "dest" if sc.killed == "source" else "source"
        left = await count(url[other], queue)
        at_kill = left if other == "dest" else n - left
        print(f"{key}: {sc.killed} killed with ~{at_kill} moved; restarting", flush=True)
        if sc.killed in levs:
            levs[sc.killed].start()
        else:
            assert rabbit is not None
            print(f"RabbitMQ restarted in {rabbit.start():.1f} s", flush=True)

        async def emptied() -> bool:
            return await count(url["source"], queue) == 0
        await until(emptied, 600)
        print(f"{key}: source empty {time.monotonic() - t0:.1f} s after the kill; shovel "
              f"{await shovel_state(host, 'k')}", flush=True)
        got = await drain(url["dest"], queue, n)
        await api(host, "DELETE", "/api/parameters/shovel/%2f/k")
        return check(sc.title, read_record(record), got, n, at_kill)
    finally:
        for lev in levs.values():
            lev.stop()
            shutil.rmtree(lev.data, ignore_errors=True)
        record.unlink(missing_ok=True)
        if rabbit is not None and rabbit.running():
            await api(rabbit.http, "DELETE", f"/api/queues/%2f/{queue}")


async def kills(n: int, which: list[str]) -> int:
    rows = []
    rabbit = None
    if any("RabbitMQ" in (SCENARIOS[k].source, SCENARIOS[k].dest) for k in which):
        rabbit = shovel_node()
        print(f"RabbitMQ private node started in {rabbit.start(fresh=True):.1f} s",
              flush=True)
    try:
        for key in which:
            rows.append(await run_kill(key, SCENARIOS[key], n, rabbit))
    finally:
        if rabbit is not None:
            rabbit.stop(remove=True)
    keys = [k for k in rows[0] if k != "failures"]
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min)")
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    failed = [(r["scenario"], f) for r in rows for f in r["failures"]]
    for scenario, failure in failed:
        print(f"FAILED: {scenario}: {failure}", file=sys.stderr, flush=True)
    if failed:
        print(f"\n*** {len(failed)} FAILURE(S): messages lost or delivered again without "
              "redelivered; see above ***", file=sys.stderr, flush=True)
    return 1 if failed else 0


def main() -> None:
    if sys.argv[1:2] == ["serve-recording"]:  # a child: python shovel.py serve-recording F ...
        raise SystemExit(serve_recording(sys.argv[2], sys.argv[3:]))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["throughput", "kills"])
    p.add_argument("--messages", type=int, default=None)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--scenario", default="all",
                   help="kills: 'all' or a comma-separated list of "
                        + ", ".join(f"{k} ({s.title})" for k, s in SCENARIOS.items()))
    args = p.parse_args()
    BASE.mkdir(parents=True, exist_ok=True)
    if args.mode == "throughput":
        asyncio.run(throughput(args.messages or 50_000, args.size))
        return
    which = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    unknown = [k for k in which if k not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    raise SystemExit(asyncio.run(kills(args.messages or 100_000, which)))


if __name__ == "__main__":
    main()
