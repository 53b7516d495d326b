"""Fuzz a broker's AMQP 0-9-1 reader with mutated client sessions.

    python tools/fuzz_amqp.py [--frames N] [--seed S] [--workers W] [--timeout T] [--url URL]

Each case is a realistic client session (handshake, channels, declares, bindings, publishes
with properties, headers and multi-frame bodies, consumes, acks, gets, qos, confirms,
transactions, closes), a few of whose frames are then mutated: bit flips, bytes set to
edge values, truncation, a frame's size, type or channel rewritten, a 4-byte length inside a
payload rewritten, frames dropped, duplicated, swapped or spliced in from another session,
garbage between frames. The case goes out on a fresh connection, which is then half-closed;
the broker must close its side within ``--timeout`` seconds (after whatever answer it
gives), or the case is a hang. Everything is derived from ``--seed`` and the case number,
so a failing case can be replayed with ``--replay``.

Without ``--url`` it starts ``python -m leveret serve`` on a free port with a temporary data
directory, and afterwards reports the broker's peak RSS (VmHWM) and any traceback, "internal
error" or ERROR line in its log; a broker that exits is a crash. Either way, a normal client
must still be able to publish and get a message at the end.

tests/test_wire_fuzz.py runs a bounded slice of the same cases against an in-process
broker; docs/robustness.md has the figures of a long run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from leveret.amqp import frames, spec

FRAME_MAX = 131072
_HEAD = struct.Struct(">BHI")
_EDGE_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xCE, 0xFF)
_EDGE_LONGS = (0, 1, 7, 8, 0xFF, 0x100, 4088, 4096, FRAME_MAX - 8, FRAME_MAX, FRAME_MAX + 1,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
_FRAME_TYPES = (0, 1, 2, 3, 4, 8, 9, 0x41, 0xCE, 0xFF)
_CHANNELS = (0, 1, 2, 3, 99, 2047, 2048, 65535)


# -- sessions ---------------------------------------------------------------------------------

def _method(channel: int, m: spec.Method) -> bytes:
    return frames.encode_method(channel, m)


def _table(rng: random.Random, depth: int = 0) -> dict[str, object]:
    """Field values of many types, nested a little."""
    values: list[object] = [rng.randint(-(2**40), 2**40), rng.random(), "text", b"\x00\xff",
                            True, None, [1, "a", 2.5]]
    if depth < 3:
        values.append(_table(rng, depth + 1))
    return {f"k{i}": rng.choice(values) for i in range(rng.randint(0, 4))}


def _properties(rng: random.Random) -> spec.Properties:
    props = spec.Properties()
    if rng.random() < 0.5:
        props.delivery_mode = rng.choice((1, 2))
    if rng.random() < 0.3:
        props.content_type = "application/json"
    if rng.random() < 0.3:
        props.headers = _table(rng)
    if rng.random() < 0.2:
        props.priority = rng.randint(0, 9)
    if rng.random() < 0.2:
        props.expiration = str(rng.randint(0, 60000))
    if rng.random() < 0.2:
        props.correlation_id, props.reply_to = "c", "amq.rabbitmq.reply-to"
    if rng.random() < 0.1:
        props.message_id, props.timestamp, props.user_id = "m", 1700000000, "guest"
    return props


def _publish(rng: random.Random, channel: int, queue: str, frame_max: int) -> list[bytes]:
    body = rng.randbytes(rng.choice((0, 1, 16, 300, frame_max, 2 * frame_max + 5)))
    content = frames.encode_content(channel, 60, _properties(rng).encode(), body, frame_max)
    parts = [_method(channel, spec.BasicPublish(
        exchange=rng.choice(("", "", "amq.direct", "fuzz-x")), routing_key=queue,
        mandatory=rng.random() < 0.3))]
    offset = 0
    while offset < len(content):  # one list item per frame, so mutations hit frames
        size = _HEAD.unpack_from(content, offset)[2]
        parts.append(content[offset:offset + size + 8])
        offset += size + 8
    return parts


def session(rng: random.Random) -> list[bytes]:
    """The frames of one plausible client session, the protocol header first."""
    frame_max = rng.choice((4096, FRAME_MAX))
    out = [frames.PROTOCOL_HEADER,
           _method(0, spec.ConnectionStartOk(
               client_properties={"product": "fuzz", "capabilities": {
                   "publisher_confirms": True, "consumer_cancel_notify": True}},
               mechanism="PLAIN", response=b"\x00guest\x00guest")),
           _method(0, spec.ConnectionTuneOk(channel_max=2047, frame_max=frame_max,
                                            heartbeat=rng.choice((0, 60)))),
           _method(0, spec.ConnectionOpen(virtual_host="/"))]
    channels = [1] if rng.random() < 0.7 else [1, 2]
    out += [_method(ch, spec.ChannelOpen()) for ch in channels]
    queue = f"fuzz-q{rng.randint(0, 3)}"
    steps = [
        lambda ch: [_method(ch, spec.QueueDeclare(
            queue=queue, exclusive=True, arguments=rng.choice((
                {}, {"x-max-length": 10}, {"x-message-ttl": 1000, "x-max-priority": 5},
                {"x-dead-letter-exchange": "fuzz-x", "x-overflow": "reject-publish"}))))],
        lambda ch: [_method(ch, spec.ExchangeDeclare(
            exchange="fuzz-x", type=rng.choice(("direct", "fanout", "topic", "headers")),
            auto_delete=True))],
        lambda ch: [_method(ch, spec.QueueBind(queue=queue, exchange="fuzz-x",
                                               routing_key=queue, arguments=_table(rng)))],
        lambda ch: _publish(rng, ch, queue, frame_max),
        lambda ch: _publish(rng, ch, queue, frame_max),
        lambda ch: [_method(ch, spec.BasicConsume(queue=queue, consumer_tag=f"c{ch}",
                                                  no_ack=rng.random() < 0.5))],
        lambda ch: [_method(ch, spec.BasicAck(delivery_tag=rng.randint(0, 3),
                                              multiple=rng.random() < 0.5))],
        lambda ch: [_method(ch, spec.BasicNack(delivery_tag=rng.randint(0, 3),
                                               requeue=rng.random() < 0.5))],
        lambda ch: [_method(ch, spec.BasicReject(delivery_tag=1, requeue=False))],
        lambda ch: [_method(ch, spec.BasicGet(queue=queue, no_ack=rng.random() < 0.5))],
        lambda ch: [_method(ch, spec.BasicQos(prefetch_count=rng.randint(0, 5)))],
        lambda ch: [_method(ch, spec.ConfirmSelect())],
        lambda ch: [_method(ch, rng.choice((spec.TxSelect(), spec.TxCommit(),
                                            spec.TxRollback())))],
        lambda ch: [_method(ch, spec.BasicCancel(consumer_tag=f"c{ch}"))],
        lambda ch: [_method(ch, spec.QueuePurge(queue=queue))],
        lambda ch: [_method(ch, spec.BasicRecover(requeue=True))],
        lambda ch: [frames.HEARTBEAT_FRAME],
        lambda ch: [_method(ch, spec.ChannelFlow(active=True))],
    ]
    for _ in range(rng.randint(3, 12)):
        out += rng.choice(steps)(rng.choice(channels))
    if rng.random() < 0.3:
        out.append(_method(channels[0], spec.ChannelClose(reply_code=200)))
    if rng.random() < 0.3:
        out.append(_method(0, spec.ConnectionClose(reply_code=200)))
    return out


# -- mutations --------------------------------------------------------------------------------

def _flip_bit(rng: random.Random, frame: bytearray) -> None:
    frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)


def _edge_byte(rng: random.Random, frame: bytearray) -> None:
    frame[rng.randrange(len(frame))] = rng.choice(_EDGE_BYTES)


def _truncate(rng: random.Random, frame: bytearray) -> None:
    del frame[rng.randrange(len(frame)):]


def _frame_size(rng: random.Random, frame: bytearray) -> None:
    if len(frame) >= 7:
        frame[3:7] = rng.choice(_EDGE_LONGS).to_bytes(4, "big")


def _frame_type(rng: random.Random, frame: bytearray) -> None:
    frame[0] = rng.choice(_FRAME_TYPES)


def _frame_channel(rng: random.Random, frame: bytearray) -> None:
    if len(frame) >= 3:
        frame[1:3] = rng.choice(_CHANNELS).to_bytes(2, "big")


def _inner_length(rng: random.Random, frame: bytearray) -> None:
    """Rewrite four bytes inside the payload: a table, string or body length, often."""
    if len(frame) >= 12:
        at = rng.randrange(7, len(frame) - 4)
        frame[at:at + 4] = rng.choice(_EDGE_LONGS).to_bytes(4, "big")


def _short_length(rng: random.Random, frame: bytearray) -> None:
    """Rewrite one byte inside the payload: a short string's length, a flag octet."""
    if len(frame) >= 9:
        frame[rng.randrange(7, len(frame) - 1)] = rng.choice((0, 1, 2, 0x7F, 0xFE, 0xFF))


_IN_FRAME = (_flip_bit, _edge_byte, _truncate, _frame_size, _frame_type, _frame_channel,
             _inner_length, _short_length)


def mutate(rng: random.Random, session_frames: list[bytes], donor: list[bytes]) -> list[bytes]:
    """One to three mutations, mostly after the handshake so they reach the channel code."""
    out = [bytearray(f) for f in session_frames]
    for _ in range(rng.randint(1, 3)):
        first = 0 if rng.random() < 0.1 else min(5, len(out) - 1)
        i = rng.randrange(first, len(out))
        kind = rng.random()
        if kind < 0.7:
            if out[i]:
                rng.choice(_IN_FRAME)(rng, out[i])
        elif kind < 0.77:
            del out[i]
        elif kind < 0.84:
            out.insert(i, bytearray(out[i]))
        elif kind < 0.91:
            j = rng.randrange(first, len(out))
            out[i], out[j] = out[j], out[i]
        elif kind < 0.97:
            out.insert(i, bytearray(rng.choice(donor)))
        else:
            out.insert(i, bytearray(rng.randbytes(rng.randint(1, 16))))
        if not out:
            out.append(bytearray(frames.PROTOCOL_HEADER))
    return [bytes(f) for f in out]


def case(seed: int, number: int) -> list[bytes]:
    """The frames of case ``number`` of the run seeded ``seed`` (deterministic)."""
    rng = random.Random(f"{seed}:{number}")
    return mutate(rng, session(rng), session(rng))


# -- running cases ----------------------------------------------------------------------------

@dataclass
class Report:
    cases: int = 0
    frames: int = 0
    hangs: list[int] = field(default_factory=list)  # case numbers
    closes: collections.Counter[int] = field(default_factory=collections.Counter)
    silent: int = 0  # closed without a connection.close (the session ended, or no answer)
    seconds: float = 0.0


def _close_codes(data: bytes) -> list[int]:
    """Reply codes of the connection.close frames among the broker's answer."""
    codes, off = [], 0
    while off + 7 <= len(data):
        ftype, channel, size = _HEAD.unpack_from(data, off)
        payload = data[off + 7:off + 7 + size]
        if ftype == frames.METHOD and channel == 0 and payload[:4] == b"\x00\x0a\x00\x32":
            codes.append(int.from_bytes(payload[4:6], "big"))
        off += size + 8
    return codes


async def run_case(host: str, port: int, data: bytes, timeout: float) -> list[int] | None:
    """Send ``data``, half-close, read until the broker closes. The close codes it sent, or
    None if it did not close within ``timeout``."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        try:
            await writer.drain()
            writer.write_eof()
        except (ConnectionError, OSError):
            pass  # it hung up before taking everything: an answer too
        chunks: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                return None
            except (ConnectionError, OSError):
                chunk = b""
            if not chunk:
                return _close_codes(b"".join(chunks))
            chunks.append(chunk)
    finally:
        writer.close()


async def fuzz(host: str, port: int, seed: int, max_frames: int, workers: int = 8,
               timeout: float = 10.0, progress: float = 0.0) -> Report:
    """Cases from number 0 on until ``max_frames`` frames have gone out."""
    report = Report()
    started = time.monotonic()
    numbers = iter(range(1 << 62))
    last_print = started

    async def worker() -> None:
        nonlocal last_print
        while report.frames < max_frames:
            number = next(numbers)
            frames_ = case(seed, number)
            report.cases += 1
            report.frames += len(frames_)
            codes = await run_case(host, port, b"".join(frames_), timeout)
            if codes is None:
                report.hangs.append(number)
            elif codes:
                report.closes.update(codes)
            else:
                report.silent += 1
            if progress and time.monotonic() - last_print > progress:
                last_print = time.monotonic()
                print(f"  {report.cases} cases, {report.frames} frames, "
                      f"{len(report.hangs)} hangs", flush=True)

    await asyncio.gather(*(worker() for _ in range(workers)))
    report.seconds = time.monotonic() - started
    return report


async def healthy(host: str, port: int, timeout: float = 10.0) -> bool:
    """A well-behaved client can still publish a message and get it back."""
    data = b"".join([frames.PROTOCOL_HEADER, *session_of_health()])
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        got = b""
        deadline = asyncio.get_running_loop().time() + timeout
        while b"still here" not in got:
            left = deadline - asyncio.get_running_loop().time()
            chunk = await asyncio.wait_for(reader.read(65536), max(left, 0.001))
            if not chunk:
                return False
            got += chunk
        return True
    except TimeoutError:
        return False
    finally:
        writer.close()


def session_of_health() -> list[bytes]:
    return [_method(0, spec.ConnectionStartOk(client_properties={}, mechanism="PLAIN",
                                              response=b"\x00guest\x00guest")),
            _method(0, spec.ConnectionTuneOk(channel_max=2047, frame_max=FRAME_MAX)),
            _method(0, spec.ConnectionOpen(virtual_host="/")),
            _method(1, spec.ChannelOpen()),
            _method(1, spec.QueueDeclare(queue="fuzz-health", exclusive=True)),
            _method(1, spec.BasicPublish(routing_key="fuzz-health")),
            frames.encode_content(1, 60, b"\x00\x00", b"still here", FRAME_MAX),
            _method(1, spec.BasicGet(queue="fuzz-health", no_ack=True))]


# -- a broker of our own ----------------------------------------------------------------------

# Log lines that mean the broker failed, not the client: a traceback, a caught bug.
BROKER_FAILURE = re.compile(r"Traceback|internal error| ERROR ")
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # the text format's lines


def start_broker(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "LEVERET_MANAGEMENT_ENABLED": "false"}
    src = Path(__file__).resolve().parent.parent / "src"
    env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", "0",
                                 "--data-dir", str(data_dir)],
                                env=env, stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(rb"listening on amqp://[^:]+:(\d+)", log.read_bytes())
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the broker did not start; see {log}")


def _failures(log: str) -> list[str]:
    """Each log record that says the broker failed, with the lines that follow it (its
    traceback) up to the next record."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in log.splitlines():
        if LOG_RECORD.match(line):
            if current is not None:
                blocks.append("\n".join(current))
            current = [line] if BROKER_FAILURE.search(line) else None
        elif current is not None:
            current.append(line)
    if current is not None:
        blocks.append("\n".join(current))
    return blocks


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=100_000, help="frames to send in all")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=8, help="connections at once")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds a broker may take to close after a case")
    ap.add_argument("--url", help="amqp://host:port of a running broker (default: start one)")
    ap.add_argument("--replay", type=int, help="print the frames of one case and exit")
    args = ap.parse_args()
    if args.replay is not None:
        for f in case(args.seed, args.replay):
            print(f.hex(" "))
        return 0
    proc = None
    with tempfile.TemporaryDirectory(prefix="leveret-fuzz-") as tmp:
        log = Path(tmp, "broker.log")
        if args.url:
            host, port = args.url.split("@")[-1].split("/")[0].rsplit(":", 1)
            address = (host, int(port))
        else:
            proc, port = start_broker(Path(tmp, "data"), log)
            address = ("127.0.0.1", port)
        try:
            report = asyncio.run(fuzz(*address, args.seed, args.frames, args.workers,
                                      args.timeout, progress=30.0))
            alive = asyncio.run(healthy(*address))
            crashed = proc is not None and proc.poll() is not None
            rss = peak_rss_kib(proc.pid) if proc is not None and not crashed else 0
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        failures = _failures(log.read_text(errors="replace")) if proc is not None else []
    print(f"seed {args.seed}: {report.cases} cases, {report.frames} frames in "
          f"{report.seconds:.1f} s")
    print(f"answers: connection.close {dict(sorted(report.closes.items()))}, "
          f"closed without one {report.silent}")
    print(f"hangs: {len(report.hangs)} {report.hangs[:10]}")
    print(f"crashed: {crashed}; broker log failures: {len(failures)}")
    for block in failures[:5]:  # each with its traceback, to be fixed from this report
        print(textwrap.indent(block, "    "))
    if proc is not None:
        print(f"peak RSS of the broker: {rss / 1024:.1f} MiB")
    print(f"a normal client afterwards: {'ok' if alive else 'FAILED'}")
    return 0 if alive and not crashed and not report.hangs and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
