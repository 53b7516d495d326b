"""Does one flooding client starve the others? Latency of a quiet client, alone and next to
a flood, on leveret and RabbitMQ side by side.

The quiet client publishes one message every 10 ms with confirms to its own queue and
consumes it back; we time publish -> confirm and publish -> deliver. The flood is
``leveret perf`` publishing as fast as it can with confirms (no consumer on its queue by
default, so its queue grows; ``--flood-consumers 1`` drains it).

    python bench/fairness.py --url amqp://guest:guest@127.0.0.1:5672/ \
        [--rabbitmq amqp://guest:guest@127.0.0.1:5673/] [--seconds 10] [--flood-size 65536]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import aio_pika


async def probe(url: str, seconds: float, interval: float = 0.01) -> dict[str, float]:
    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("", exclusive=True)
        sent: dict[bytes, float] = {}
        deliver_ms: list[float] = []
        confirm_ms: list[float] = []

        async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            t0 = sent.pop(msg.body, None)
            if t0 is not None:
                deliver_ms.append((time.perf_counter() - t0) * 1000)

        await q.consume(on_message, no_ack=True)
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            body = n.to_bytes(8, "big")
            n += 1
            t0 = sent[body] = time.perf_counter()
            await ch.default_exchange.publish(aio_pika.Message(body), routing_key=q.name)
            confirm_ms.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(interval)
        await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return _summary(confirm_ms, deliver_ms)


def _summary(confirm_ms: list[float], deliver_ms: list[float]) -> dict[str, float]:
    def pct(xs: list[float], p: float) -> float:
        if not xs:
            return float("nan")
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))]

    return {"probes": len(confirm_ms), "delivered": len(deliver_ms),
            "confirm_p50": statistics.median(confirm_ms) if confirm_ms else float("nan"),
            "confirm_p99": pct(confirm_ms, 0.99),
            "deliver_p50": statistics.median(deliver_ms) if deliver_ms else float("nan"),
            "deliver_p99": pct(deliver_ms, 0.99)}


def run(url: str, seconds: float, flood_consumers: int,
        flood_size: int) -> tuple[dict[str, float], ...]:
    quiet = asyncio.run(probe(url, seconds))
    flood = subprocess.Popen(
        [sys.executable, "-m", "leveret", "perf", "--uri", url, "--producers", "1",
         "--consumers", str(flood_consumers), "--confirm", "5000", "--autoack",
         "--size", str(flood_size),
         "--time", str(seconds + 3), "--quiet", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(2)  # let the flood reach full speed
        loaded = asyncio.run(probe(url, seconds))
    finally:
        out, _ = flood.communicate(timeout=seconds + 30)
    print(f"  flood: {out.strip()[:300]}", file=sys.stderr)
    return quiet, loaded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    ap.add_argument("--rabbitmq", default=None, help="the reference's URL, for a side by side")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--flood-consumers", type=int, default=0)
    ap.add_argument("--flood-size", type=int, default=16, help="the flood's body size (bytes)")
    args = ap.parse_args()
    brokers = [("leveret", args.url)] + ([("rabbitmq", args.rabbitmq)] if args.rabbitmq else [])
    print(f"{'broker':10} {'load':6} {'probes':>6} {'confirm p50':>12} {'p99':>9} "
          f"{'deliver p50':>12} {'p99':>9}   (ms)")
    for name, url in brokers:
        for load, s in zip(("alone", "flood"), run(url, args.seconds, args.flood_consumers,
                                                       args.flood_size), strict=True):
            print(f"{name:10} {load:6} {s['probes']:6.0f} {s['confirm_p50']:12.2f} "
                  f"{s['confirm_p99']:9.2f} {s['deliver_p50']:12.2f} {s['deliver_p99']:9.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
