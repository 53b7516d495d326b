"""Where a message's time goes on the hot path, stage by stage (issue 14).

Each stage runs a longer part of the path of ``bench/hotpath.py`` than the one before, on
the same pre-encoded frames (basic.publish + content header + one body frame); the cost of a
stage is its difference from the stage before. Counted in instructions by valgrind's
callgrind (two runs of different lengths, the difference divided by the difference in
messages, so start-up and imports cancel: repeatable on a busy machine) and timed (best of
``--repeat`` runs, noisy on a shared machine).

No-ack path (``bench/hotpath.py``):

    frames      FrameBuffer: feed the bytes, cut them into frames, compact
    decode      + decode each method frame's arguments (basic.publish: the decoder the
                  machine uses, the hand-written one where the tree has it)
    machine     + the protocol machine (its checks, content assembly) with an owner that
                  drops each complete message
    unrouted    + the broker's publish: channel, permissions, Message, property checks,
                  vhost publish and routing, to a routing key no queue is bound to
    queued      + into a queue without consumers (Entry, ready list, counters)
    delivered   + a no-ack consumer: hand-over, basic.deliver framing, output batching
                  (bench/hotpath.py itself)

Persistent path (``bench/hotpath.py --durable``: a durable queue, confirms, a consumer with
manual acks, one multiple ack and one group commit per batch):

    d-transient   that path with transient messages (delivery_mode 1): nothing is written
    d-persistent  + persistent messages: each encoded into a log record with its CRC and
                  written (fsync off)
    d-no-consumer the persistent publish alone (no consumer, no acks), for the split

    python bench/stages.py                     # every stage: instructions and us/message
    python bench/stages.py --stage machine     # one stage, timed
    python bench/stages.py --cprofile          # cProfile's split of the two whole paths
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hotpath import handshake

from leveret.amqp import frames, spec
from leveret.amqp.connection import ProtocolMachine, Role
from leveret.amqp.content import ContentHead
from leveret.broker.node import Node
from leveret.store.base import FsyncPolicy
from leveret.store.disk import DiskStore

BATCH = 100
NOACK = ("frames", "decode", "machine", "unrouted", "queued", "delivered")
DURABLE = ("d-transient", "d-persistent", "d-no-consumer")


def publish_frames(size: int, properties: bytes, routing_key: str = "bench") -> bytes:
    """BATCH basic.publish messages, each as its three frames."""
    one = frames.encode_method(1, spec.BasicPublish(routing_key=routing_key)) + \
        frames.encode_content(1, 60, properties, b"x" * size, 131072)
    return one * BATCH


NO_PROPERTIES = b"\x00\x00"
TRANSIENT = b"\x10\x00\x01"  # delivery_mode 1
PERSISTENT = b"\x10\x00\x02"  # delivery_mode 2


class _DropOwner:
    """A protocol machine owner that accepts everything and keeps nothing."""

    def header_received(self) -> None: ...
    def connection_method(self, method: spec.Method) -> None: ...
    def channel_method(self, number: int, method: spec.Method) -> None: ...
    def content_received(self, number: int, head: ContentHead, properties: bytes,
                         body: bytes) -> None: ...
    def channel_closed(self, number: int, method: object) -> None: ...
    def channel_failed(self, number: int, error: object) -> None: ...
    def connection_closed(self, method: object) -> None: ...


def stage_runner(stage: str, size: int) -> Callable[[int], None]:  # noqa: C901
    """A function running ``rounds`` batches of BATCH messages through ``stage``."""
    if stage in ("frames", "decode"):
        chunk = publish_frames(size, NO_PROPERTIES)
        buffer = frames.FrameBuffer()
        decode = stage == "decode"
        # the decoder the protocol machine uses for basic.publish: the hand-written one
        # where the tree has it, else the generated one
        decode_publish = getattr(frames, "decode_publish", None) or (
            lambda payload: spec.BasicPublish.decode(payload, 4))

        def run(rounds: int) -> None:
            for _ in range(rounds):
                buffer.feed(chunk)
                while (frame := buffer.next_frame()) is not None:
                    if decode and frame[0] == frames.METHOD:
                        decode_publish(frame[2])
                buffer.compact()
        return run
    if stage == "machine":
        chunk = publish_frames(size, NO_PROPERTIES)
        machine = ProtocolMachine(Role.SERVER, _DropOwner(), lambda data: None)
        machine.receive_data(frames.PROTOCOL_HEADER)
        machine.send(0, spec.ConnectionStart(mechanisms=b"PLAIN", locales=b"en_US"))
        machine.receive_data(frames.encode_method(0, spec.ConnectionStartOk(
            mechanism="PLAIN", response=b"\0guest\0guest")))
        machine.send(0, spec.ConnectionTune(channel_max=2047, frame_max=131072))
        machine.receive_data(frames.encode_method(0, spec.ConnectionTuneOk(
            channel_max=2047, frame_max=131072)) + frames.encode_method(
            0, spec.ConnectionOpen(virtual_host="/")))
        machine.send(0, spec.ConnectionOpenOk())
        machine.receive_data(frames.encode_method(1, spec.ChannelOpen()))
        machine.send(1, spec.ChannelOpenOk())
        if 1 not in machine.channels:
            raise SystemExit("the machine did not open the channel")

        def run(rounds: int) -> None:
            for _ in range(rounds):
                machine.receive_data(chunk)
        return run
    if stage in NOACK:
        node = Node()
        pub = handshake(node)
        if stage != "unrouted":
            sub = handshake(node)
            sub.receive_data(frames.encode_method(1, spec.QueueDeclare(queue="bench")))
            if stage == "delivered":
                sub.receive_data(
                    frames.encode_method(1, spec.BasicQos(prefetch_count=2 * BATCH)) +
                    frames.encode_method(1, spec.BasicConsume(queue="bench", no_ack=True)))
            sub.take_output()
        chunk = publish_frames(size, NO_PROPERTIES,
                               "nowhere" if stage == "unrouted" else "bench")

        def run(rounds: int) -> None:
            for _ in range(rounds):
                pub.receive_data(chunk)
                if stage == "delivered":
                    sub.take_output()
                    sub.output_flushed()
        return run
    return _durable_runner(stage, size)


def _durable_runner(stage: str, size: int) -> Callable[[int], None]:
    node = Node()
    store = DiskStore(Path(tempfile.mkdtemp(prefix="stages-")), FsyncPolicy.parse("off"))
    node.attach_store(store)
    pub = handshake(node)
    sub = handshake(node)
    consume = stage != "d-no-consumer"
    sub.receive_data(
        frames.encode_method(1, spec.QueueDeclare(queue="bench", durable=True)) +
        frames.encode_method(1, spec.BasicQos(prefetch_count=2 * BATCH)) +
        (frames.encode_method(1, spec.BasicConsume(queue="bench")) if consume else b""))
    pub.receive_data(frames.encode_method(1, spec.ConfirmSelect()))
    pub.take_output()
    sub.take_output()
    chunk = publish_frames(size, TRANSIENT if stage == "d-transient" else PERSISTENT)
    tag = 0

    def run(rounds: int) -> None:
        nonlocal tag
        for _ in range(rounds):
            pub.receive_data(chunk)
            if consume:
                sub.take_output()
                sub.output_flushed()
                tag += BATCH
                sub.receive_data(frames.encode_method(
                    1, spec.BasicAck(delivery_tag=tag, multiple=True)))
            store.flush().run()
            store.commit()
            pub.store_synced()
            pub.take_output()
    return run


# cProfile's inclusive time of the functions that make each stage, per message: where the
# time goes inside the whole path (cProfile's own cost per call inflates the small ones).
PROFILED = (
    ("frame parsing", "amqp/frames.py", "next_frame"),
    ("basic.publish decode", "amqp/frames.py", "decode_publish"),
    ("method decode (generated)", "amqp/spec.py", "decode"),
    ("content assembly", "amqp/content.py", "header"),
    ("content assembly", "amqp/content.py", "body"),
    ("channel publish (checks, Message)", "broker/channel.py", "publish"),
    ("vhost publish", "broker/vhost.py", "publish"),
    ("routing", "broker/vhost.py", "route"),
    ("queue push", "broker/queues/classic.py", "push"),
    ("channel deliver", "broker/channel.py", "deliver"),
    ("delivery encode", "amqp/frames.py", "encode_deliver"),
    ("output batching", "broker/connection.py", "write"),
    ("store encode", "store/codec.py", "pack_message"),
    ("store append (record head, CRC)", "store/segments.py", "append"),
    ("store CRC", "store/records.py", "message_head"),
    ("acks", "broker/channel.py", "ack"),
    ("confirms", "broker/channel.py", "flush_confirms"),
    ("group commit", "store/disk.py", "commit"),
    ("group commit", "store/disk.py", "flush"),
)


def profile_stage(stage: str, messages: int, size: int) -> None:
    import cProfile
    import pstats

    run = stage_runner(stage, size)
    run(10)
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.runcall(run, messages // BATCH)
    total = time.perf_counter() - t0
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    print(f"\n{stage}: {total / messages * 1e6:.2f} us/message under cProfile")
    print("| function | us/message (inclusive) | share |")
    print("|---|---:|---:|")
    for label, path, name in PROFILED:
        for (filename, line, func), (_cc, _nc, _tt, ct, _callers) in stats.items():
            if filename.endswith(path) and func == name:
                print(f"| {label}: `{path}` `{func}` (line {line}) | "
                      f"{ct / messages * 1e6:.2f} | {ct / total:.0%} |")


def time_stage(stage: str, messages: int, size: int) -> float:
    run = stage_runner(stage, size)
    run(10)  # warm up
    t0 = time.perf_counter()
    run(messages // BATCH)
    return (time.perf_counter() - t0) / messages * 1e6


def count_instructions(stage: str, messages: int, size: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--stage", stage, "--messages", str(messages), "--size", str(size)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def table(stages: tuple[str, ...], args: argparse.Namespace) -> None:
    n1, n2 = args.n1, args.n2
    print(f"| stage | instructions/message | stage's own | us/message (best of {args.repeat})"
          " | stage's own |")
    print("|---|---:|---:|---:|---:|")
    prev_i = prev_t = 0.0
    for stage in stages:
        a = count_instructions(stage, n1, args.size)
        b = count_instructions(stage, n2, args.size)
        per = (b - a) / (n2 - n1)
        us = min(time_stage(stage, args.messages, args.size) for _ in range(args.repeat))
        first = stage in ("frames", "d-transient", "d-no-consumer")
        own_i = per if first else per - prev_i
        own_t = us if first else us - prev_t
        print(f"| {stage} | {per:,.0f} | {own_i:+,.0f} | {us:.2f} | {own_t:+.2f} |", flush=True)
        prev_i, prev_t = per, us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=NOACK + DURABLE)
    # (more than 100,000 messages left in a queue would start paging it out)
    ap.add_argument("--messages", type=int, default=40_000)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n1", type=int, default=10_000)
    ap.add_argument("--n2", type=int, default=40_000)
    ap.add_argument("--only", choices=("noack", "durable"))
    ap.add_argument("--cprofile", action="store_true",
                    help="cProfile the whole no-ack and persistent paths instead")
    args = ap.parse_args()
    if args.cprofile:
        for stage in (args.stage,) if args.stage else ("delivered", "d-persistent"):
            profile_stage(stage, args.messages, args.size)
        return
    if args.stage is not None:
        run = stage_runner(args.stage, args.size)
        t0 = time.perf_counter()
        run(args.messages // BATCH)
        dt = time.perf_counter() - t0
        print(f"{args.stage}: {dt / args.messages * 1e6:.2f} us/message", file=sys.stderr)
        return
    try:
        from leveret.build import describe
    except ImportError:  # a tree from before the compiled build
        def describe() -> str:
            return "pure Python"
    print(f"{describe()}; {args.size} B bodies, batches of {BATCH}; instructions: "
          f"({args.n2:,} - {args.n1:,} messages) / {args.n2 - args.n1:,}")
    if args.only != "durable":
        table(NOACK, args)
    if args.only != "noack":
        print()
        table(DURABLE, args)


if __name__ == "__main__":
    main()
