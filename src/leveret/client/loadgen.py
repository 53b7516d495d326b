"""Load generation for ``leveret perf``: producers, consumers, and the worker that runs them.

A worker runs some producers and/or consumers on one event loop (each on its own
connection), waits for the coordinator's ``("start", t0)``, then reports cumulative
counters once a second (at t0 + k on the shared monotonic clock) and a final summary.

Latency is measured as PerfTest does: the producer writes ``time.monotonic_ns()`` into
the first 8 bytes of the body and the consumer subtracts it from its own clock. The
monotonic clock is system-wide on Linux, so this holds across processes on one host.
One timestamp is taken per batch: the batch goes out in a single write right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import time
from array import array
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

from leveret.amqp import spec
from leveret.client.channel import Channel, DeliverCallback
from leveret.client.connection import Connection, connect

_TS = struct.Struct(">q")
MAX_LATENCY_NS = 3600 * 10**9  # beyond an hour the "timestamp" is not ours


@dataclass(frozen=True)
class LoadConfig:
    uri: str
    producers: int = 1
    consumers: int = 1
    size: int = 16
    rate: float = 0.0  # per producer; 0 = unlimited
    confirm: int = 0  # max unconfirmed per producer; 0 = no confirms
    persistent: bool = False
    autoack: bool = False
    prefetch: int = 0
    multi_ack_every: int = 1
    duration: float = 10.0  # 0 = until pmessages/cmessages
    queue: str = ""  # "" = one server-named exclusive queue per consumer
    exchange: str = "amq.direct"  # used with server-named queues
    routing_key: str = ""
    auto_delete: bool = True
    pmessages: int = 0
    cmessages: int = 0
    batch: int = 100


class Stats:
    __slots__ = ("end", "latencies", "received", "sent", "tick_mark")

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.latencies = array("q")  # nanoseconds, every message of the run
        self.tick_mark = 0  # index in latencies where the current second starts
        self.end = 0.0


def percentiles(sorted_ns: Any, points: tuple[float, ...]) -> list[float]:
    """Nearest-rank percentiles of an ascending sequence, in microseconds."""
    n = len(sorted_ns)
    if not n:
        return [0.0 for _ in points]
    return [sorted_ns[min(n - 1, int(p / 100 * n))] / 1000 for p in points]


def _consumer_callback(ch: Channel, cfg: LoadConfig, st: Stats, done: asyncio.Event
                       ) -> DeliverCallback:  # fmt: skip
    now = time.monotonic_ns
    stamp = _TS.unpack_from
    record = st.latencies.append
    limit = cfg.cmessages or -1
    every = cfg.multi_ack_every
    autoack = cfg.autoack
    ack = ch.ack
    pending = 0

    def on_message(tag: int, _r: bool, _e: str, _k: str, _p: bytes, body: bytes) -> None:
        nonlocal pending
        st.received += 1
        if len(body) >= 8:
            lat = now() - stamp(body)[0]
            if 0 <= lat < MAX_LATENCY_NS:
                record(lat)
        if not autoack:
            pending += 1
            if pending >= every:
                ack(tag, True)  # multiple: settles this one and all before it
                pending = 0
        if st.received == limit:
            st.end = time.monotonic()
            done.set()

    return on_message


async def _declare(ch: Channel, cfg: LoadConfig) -> str:
    if cfg.queue:
        await ch.queue_declare(cfg.queue, durable=True, auto_delete=cfg.auto_delete)
        return cfg.queue
    ok = await ch.queue_declare("", exclusive=True, auto_delete=True)
    await ch.queue_bind(ok.queue, cfg.exchange, cfg.routing_key)
    return str(ok.queue)


async def _produce(conn: Connection, ch: Channel, cfg: LoadConfig, st: Stats,
                   t0: float, deadline: float) -> float:  # fmt: skip
    """Publish until the deadline or ``pmessages``; returns when it stopped."""
    mode = 2 if cfg.persistent else 1
    props = spec.Properties(delivery_mode=mode).encode()
    if cfg.queue:
        publish = ch.publisher("", cfg.queue, props)
    else:
        publish = ch.publisher(cfg.exchange, cfg.routing_key, props)
    pad = bytes(max(0, cfg.size - 8))
    fixed = bytes(cfg.size) if cfg.size < 8 else None
    rate, window, limit = cfg.rate, cfg.confirm, cfg.pmessages
    # with confirms, wake once a quarter of the window is free, to publish in batches
    refill = max(0, window - max(1, window // 4))
    clock = time.monotonic
    stamp = _TS.pack
    sent = 0
    while True:
        t = clock()
        if t >= deadline or (limit and sent >= limit):
            break
        n = cfg.batch
        if rate:
            due = int((t - t0) * rate) + 1 - sent
            if due <= 0:
                # sleep at least 2 ms: finer timers burn the CPU the broker needs
                await asyncio.sleep(max(0.002, (sent + 1) / rate - (t - t0)))
                continue
            n = min(n, due)
        if window:
            room = window - len(ch._unconfirmed)
            if room <= 0:
                await ch.wait_unconfirmed(refill)
                continue
            n = min(n, room)
        if limit:
            n = min(n, limit - sent)
        body = fixed if fixed is not None else stamp(time.monotonic_ns()) + pad
        for _ in range(n):
            publish(body)
        sent += n
        st.sent += n
        await conn.drain()
    end = clock()
    if window and limit and sent >= limit:  # a counted run: let the last confirms arrive
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ch.wait_for_confirms(), 10)
    return end


async def _recv_pipe(pipe: Pipe) -> Any:
    """Wait for one message on the coordinator pipe without blocking the loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def readable() -> None:
        loop.remove_reader(pipe.fileno())
        if fut.done():
            return
        try:
            fut.set_result(pipe.recv())
        except EOFError:
            fut.set_result(("stop",))

    loop.add_reader(pipe.fileno(), readable)
    try:
        return await fut
    finally:
        loop.remove_reader(pipe.fileno())


async def _close_all(conns: list[Connection]) -> None:
    async def close(c: Connection) -> None:
        # the run is over: a slow or failed close must not hide its results
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.close(), 5)

    await asyncio.gather(*(close(c) for c in conns))


async def _setup(role: str, cfg: LoadConfig, st: Stats, done: asyncio.Event,
                 conns: list[Connection]) -> tuple[list[Any], list[Any]]:  # fmt: skip
    consumers: list[tuple[Channel, str, DeliverCallback]] = []
    producers: list[tuple[Connection, Channel]] = []
    for _ in range(cfg.consumers if role in ("consumers", "all") else 0):
        conn = await connect(cfg.uri)
        conns.append(conn)
        ch = await conn.channel()
        if not cfg.autoack and cfg.prefetch:
            await ch.basic_qos(cfg.prefetch)
        queue = await _declare(ch, cfg)
        consumers.append((ch, queue, _consumer_callback(ch, cfg, st, done)))
    for _ in range(cfg.producers if role in ("producers", "all") else 0):
        conn = await connect(cfg.uri)
        conns.append(conn)
        ch = await conn.channel()
        if cfg.queue:
            await _declare(ch, cfg)  # idempotent; lets producers run without consumers
        if cfg.confirm:
            await ch.confirm_select()
        producers.append((conn, ch))
    return consumers, producers


def _tick(st: Stats, t: float, chans: list[Channel]) -> dict[str, Any]:
    chunk = sorted(st.latencies[st.tick_mark :])
    st.tick_mark = len(st.latencies)
    return {
        "t": t, "sent": st.sent, "received": st.received,
        "confirmed": sum(ch.acked for ch in chans), "nacked": sum(ch.nacked for ch in chans),
        "lat": percentiles(chunk, (50, 95)) if chunk else None,
    }  # fmt: skip


async def _ticker(pipe: Pipe, st: Stats, t0: float, deadline: float,
                  chans: list[Channel]) -> None:  # fmt: skip
    k = 1
    while t0 + k <= deadline:
        await asyncio.sleep(t0 + k - time.monotonic())
        pipe.send(("tick", k, _tick(st, time.monotonic() - t0, chans)))
        k += 1


async def _finished(tasks: list[asyncio.Task[float]], has_consumers: bool,
                    cfg: LoadConfig, done: asyncio.Event) -> None:  # fmt: skip
    if tasks:
        await asyncio.gather(*tasks)
    if has_consumers or not tasks:
        if not cfg.cmessages:
            await asyncio.Event().wait()  # consumers run until the deadline or a stop
        await done.wait()


async def run_worker(role: str, cfg: LoadConfig, pipe: Pipe) -> None:
    """Set up, report ready, wait for start, run, report done. ``role``: producers,
    consumers or all."""
    st = Stats()
    done = asyncio.Event()
    conns: list[Connection] = []
    try:
        consumers, producers = await _setup(role, cfg, st, done, conns)
        server = conns[0].server_properties if conns else {}
        info = {k: str(server.get(k, "?")) for k in ("product", "version")}
        pipe.send(("ready", info))
        msg = await _recv_pipe(pipe)
        if msg[0] != "start":
            return
        t0 = msg[1]
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        deadline = t0 + cfg.duration if cfg.duration else float("inf")
        cpu0 = time.process_time()
        for ch, queue, callback in consumers:
            await ch.basic_consume(queue, callback, no_ack=cfg.autoack)
        chans = [ch for _c, ch in producers]
        tasks = [asyncio.create_task(_produce(c, ch, cfg, st, t0, deadline))
                 for c, ch in producers]  # fmt: skip
        waits: list[asyncio.Future[Any]] = [
            asyncio.create_task(_recv_pipe(pipe)),
            asyncio.create_task(_finished(tasks, bool(consumers), cfg, done)),
            *(asyncio.create_task(c.wait_closed()) for c in conns),
        ]
        if cfg.duration:
            waits.append(asyncio.create_task(asyncio.sleep(deadline - time.monotonic())))
        ticker = asyncio.create_task(_ticker(pipe, st, t0, deadline, chans))
        first, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        end = time.monotonic()
        cpu = time.process_time() - cpu0
        for task in [*waits, *tasks, ticker]:
            task.cancel()
        for task in first:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        for conn in conns:
            if conn.is_closed:
                raise RuntimeError(f"connection closed during the run: {conn._closed}")
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        lat = st.latencies
        step = max(1, len(lat) // 2_000_000)  # bound the final sort: sample evenly
        ranked = sorted(lat[::step])
        latency = None
        if ranked:
            p50, p75, p95, p99 = percentiles(ranked, (50, 75, 95, 99))
            latency = {"p50": p50, "p75": p75, "p95": p95, "p99": p99, "max": max(lat) / 1000}
        pipe.send(("done", {
            "sent": st.sent, "received": st.received,
            "confirmed": sum(ch.acked for ch in chans),
            "nacked": sum(ch.nacked for ch in chans),
            "producer_s": max((t.result() if t.done() and not t.cancelled() else
                               min(deadline, end) for t in tasks), default=t0) - t0,
            "consumer_s": ((st.end or end) - t0) if consumers else 0.0,
            "cpu_s": cpu, "role": role, "pid": os.getpid(),
            "latency_us": latency,
            "latency_samples": len(lat),
        }))  # fmt: skip
    except Exception as exc:
        with contextlib.suppress(OSError):  # the coordinator may be gone already
            pipe.send(("error", f"{role}: {type(exc).__name__}: {exc}"))
    finally:
        await _close_all(conns)


def worker_entry(role: str, cfg: dict[str, Any], pipe: Pipe, use_uvloop: bool,
                 subprocess: bool = True) -> None:  # fmt: skip
    """Process (or thread) target: run one worker on its own event loop."""
    if subprocess:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C
    config = LoadConfig(**cfg)
    coro = run_worker(role, config, pipe)
    if use_uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


def config_dict(cfg: LoadConfig) -> dict[str, Any]:
    return asdict(cfg)
