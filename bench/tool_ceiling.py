#!/usr/bin/env python3
"""How fast can ``leveret perf`` itself push and pull? Measured against a "null broker".

The null broker speaks just enough AMQP (handshake, channel/queue/qos/confirm/consume
methods) and then does as little as possible: a publishing connection's bytes are
counted by size once the first basic.publish shows how long one message is on the wire
(perf sends fixed-size messages; confirms go out as one multiple-ack per read), and a
consumer is fed pre-encoded deliveries as fast as the socket takes them (re-stamped
with the current time per batch, so latencies stay meaningful). Whatever rate the tool
reaches here is its own ceiling on this machine.

    python bench/tool_ceiling.py [--time 5]         # runs the null broker + the perf runs
    python bench/tool_ceiling.py --serve --port N   # just the null broker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from leveret.amqp import frames, spec  # noqa: E402

_TS = struct.Struct(">q")


class NullBroker(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = frames.FrameBuffer()
        self.greeted = False
        self.first: list[int] = []  # the first publish, parsed to learn its wire size
        self.msg_len = 0  # once set: counting mode
        self.nbytes = 0
        self.tail = b""
        self.count = 0
        self.confirm_channel = 0
        self.paused = False
        self.feeding: tuple[int, str] | None = None
        self.size = 16  # body size of fed deliveries: vhost "size-N" asks for N

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: asyncio.Transport = transport  # type: ignore[assignment]

    def send(self, channel: int, method: spec.Method) -> None:
        self.t.write(frames.encode_method(channel, method))

    def data_received(self, data: bytes) -> None:
        if self.msg_len:
            self.count_publishes(data)
            return
        self.buf.feed(data)
        if not self.greeted:
            if self.buf.take(8) is None:
                return
            self.greeted = True
            self.send(0, spec.ConnectionStart(0, 9, {"product": "null-broker"}, b"PLAIN"))
        while (frame := self.buf.next_frame()) is not None:
            ftype, channel, payload = frame
            if ftype == frames.METHOD:
                method = spec.METHODS[struct.unpack_from(">I", payload)[0]].decode(payload, 4)
                if isinstance(method, spec.BasicPublish):
                    self.first = [len(payload) + 8, 0, 0]  # wire bytes, body size, body got
                else:
                    self.on_method(channel, method)
            elif ftype == frames.HEADER and self.first:
                self.first[0] += len(payload) + 8
                self.first[1] = struct.unpack_from(">Q", payload, 4)[0]
            elif ftype == frames.BODY and self.first:
                self.first[0] += len(payload) + 8
                self.first[2] += len(payload)
            if self.first and self.first[2] >= self.first[1] and self.first[0] > 30:
                # one whole publish seen: every later one has the same wire size (perf
                # publishes fixed-size bodies), so from now on bytes are just counted
                self.msg_len = self.first[0]
                self.count = 1
                rest = self.buf.take(len(self.buf)) or b""
                self.buf = frames.FrameBuffer()
                self.count_publishes(rest)
                return
        self.buf.compact()

    def count_publishes(self, data: bytes) -> None:
        self.nbytes += len(data)
        self.count = 1 + self.nbytes // self.msg_len
        window = self.tail + data[-64:]
        self.tail = window[-64:]
        if b"\x00\x0a\x00\x32" in window:  # connection.close (the client's last words)
            self.send(0, spec.ConnectionCloseOk())
            self.t.close()
        elif self.confirm_channel:
            self.send(self.confirm_channel, spec.BasicAck(self.count, True))

    def on_method(self, ch: int, m: spec.Method) -> None:
        replies: dict[type[spec.Method], spec.Method] = {
            spec.ChannelOpen: spec.ChannelOpenOk(), spec.BasicQos: spec.BasicQosOk(),
            spec.QueueBind: spec.QueueBindOk(), spec.ChannelClose: spec.ChannelCloseOk(),
            spec.ConfirmSelect: spec.ConfirmSelectOk(),
        }  # fmt: skip
        if isinstance(m, spec.ConnectionStartOk):
            self.send(0, spec.ConnectionTune(2047, 131072, 0))
        elif isinstance(m, spec.ConnectionOpen):
            if m.virtual_host.startswith("size-"):
                self.size = max(8, int(m.virtual_host[5:]))
            self.send(0, spec.ConnectionOpenOk())
        elif isinstance(m, spec.ConnectionClose):
            self.send(0, spec.ConnectionCloseOk())
            self.t.close()
        elif isinstance(m, spec.QueueDeclare):
            self.send(ch, spec.QueueDeclareOk(m.queue or "amq.gen-null", 0, 0))
        elif isinstance(m, spec.BasicConsume):
            tag = m.consumer_tag or "null-ctag"
            self.send(ch, spec.BasicConsumeOk(tag))
            self.feeding = (ch, tag)
            asyncio.get_running_loop().call_soon(self.feed)
        elif type(m) in replies:
            if isinstance(m, spec.ConfirmSelect):
                self.confirm_channel = ch
            if isinstance(m, spec.ChannelClose):
                self.feeding = None
            self.send(ch, replies[type(m)])

    def feed(self) -> None:
        """Write a batch of deliveries (500, or 1 MiB of large ones), then come back on the
        next loop turn."""
        if self.feeding is None or self.paused or self.t.is_closing():
            return
        batch = max(1, min(500, (1 << 20) // self.size))
        ch, tag = self.feeding
        method = frames.encode_method(ch, spec.BasicDeliver(tag, 1, False, "amq.direct", "k"))
        body = _TS.pack(time.monotonic_ns()) + bytes(self.size - 8)
        one = method + frames.encode_content(ch, 60, b"\x10\x00\x01", body, 131072)
        self.t.write(one * batch)
        asyncio.get_running_loop().call_soon(self.feed)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.feed()


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(NullBroker, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


RUNS = {
    "push (1 producer, no consumer)": ["--producers", "1", "--consumers", "0", "--queue", "q"],
    "push, confirms 256": ["--producers", "1", "--consumers", "0", "--queue", "q",
                           "--confirm", "256"],
    "pull (1 consumer, autoack)": ["--producers", "0", "--consumers", "1", "--autoack"],
    "pull, manual multi-ack every 50": ["--producers", "0", "--consumers", "1",
                                        "--prefetch", "100"],
    "pull, 1 KiB messages": ["--producers", "0", "--consumers", "1", "--autoack",
                             "--uri", "VHOST:size-1024"],
    "push, 1 KiB messages": ["--producers", "1", "--consumers", "0", "--queue", "q",
                             "--size", "1024"],
    "pull, 4 KiB messages": ["--producers", "0", "--consumers", "1", "--autoack",
                             "--uri", "VHOST:size-4096"],
    "push, 4 KiB messages": ["--producers", "1", "--consumers", "0", "--queue", "q",
                             "--size", "4096"],
    "pull, 64 KiB messages": ["--producers", "0", "--consumers", "1", "--autoack",
                              "--uri", "VHOST:size-65536"],
    "push, 64 KiB messages": ["--producers", "1", "--consumers", "0", "--queue", "q",
                              "--size", "65536"],
    # fanout to 10 queues: 10 consumer connections in the tool's one consumer process
    "pull, 10 consumers": ["--producers", "0", "--consumers", "10", "--autoack"],
}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", action="store_true")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--time", type=float, default=5.0)
    p.add_argument("--only", default="", help="only the runs whose name contains this")
    args = p.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(serve(args.port))
        return 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port)], env=env)
    try:
        time.sleep(1.0)
        url = f"amqp://guest:guest@127.0.0.1:{port}/"
        print(f"{'run':36s} {'sent msg/s':>12s} {'received msg/s':>15s}  tool cpu")
        for name, extra in RUNS.items():
            if args.only not in name:
                continue
            cmd = [sys.executable, "-m", "leveret.cli.perf", "--uri", url, "--time",
                   str(args.time), "--json", "--quiet", *extra]  # fmt: skip
            # vhost "size-N": the null broker feeds N-byte bodies there
            cmd = [a.replace("VHOST:", url) for a in cmd]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode:
                print(f"{name:36s} failed: {proc.stderr.strip()[-300:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            cpu = " ".join(f"{k}:{v * 100:.0f}%" for k, v in r["tool_cpu"].items())
            print(f"{name:36s} {r['sent_rate']:>12,.0f} {r['received_rate']:>15,.0f}  {cpu}",
                  flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
