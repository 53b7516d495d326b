"""Where a received 64 KiB body should land: four ways of reading it, CPU per message.

A writer process streams messages shaped like AMQP publishes (a 120-byte prelude: frame
end, method frame, header frame, body frame header; then the body) over loopback TCP as
fast as it can. The reader keeps the last 8 bodies alive (as a queue does) and reads in one
of four ways:

- ``ring``: what the broker does (amqp/frames.py ``FrameBuffer``): ``recv_into`` a reused
  256 KiB ring, each body copied out once with ``memoryview.tobytes``;
- ``direct``: the kernel's copy lands in the body itself: ``os.readv`` of exactly the
  prelude into a small buffer, then ``os.read`` of exactly the body (a new, uninitialised
  bytes object), so no user-space copy at all but two reads per message;
- ``bytearray``: as ``direct``, but into a new ``bytearray`` per body (zero-filled first);
- ``views``: rings are never reused; each body is a memoryview of the ring it arrived in
  (a fresh 256 KiB ring whenever one fills, the unread tail copied over).

Prints messages per second and the reader's CPU per message (user + system, from
getrusage). The machine must have glibc's allocator thresholds as the broker sets them
(server/allocator.py), or every 256 KiB ring would be a new mmap.

    python bench/receive_copies.py [--messages 60000] [--rounds 2] [ring direct ...]
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import resource
import socket
import time
from collections.abc import Callable

from leveret.server.allocator import tune_allocator

PRELUDE = 120
BODY = 65536
MESSAGE = PRELUDE + BODY
RING = 256 << 10
KEEP = 8  # bodies alive at once, as in a queue that keeps up


def writer(port: int, messages: int) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    blob = (b"p" * PRELUDE + b"b" * BODY) * 16
    sent = 0
    while sent < messages * MESSAGE:
        s.sendall(blob)
        sent += len(blob)
    s.close()


def read_exactly(fd: int, view: memoryview) -> None:
    k = 0
    while k < len(view):
        n = os.readv(fd, [view[k:]])
        if not n:
            raise EOFError
        k += n


def ring(conn: socket.socket, messages: int, keep: collections.deque[object]) -> None:
    buf = bytearray(RING)
    view = memoryview(buf)
    r = w = got = 0
    while got < messages:
        if RING - w < 16384:  # move the unread tail to the front
            pending = w - r
            view[:pending] = view[r:w]
            r, w = 0, pending
        n = conn.recv_into(view[w:])
        if not n:
            raise EOFError
        w += n
        while w - r >= MESSAGE:
            keep.append(view[r + PRELUDE : r + MESSAGE].tobytes())
            r += MESSAGE
            got += 1


def views(conn: socket.socket, messages: int, keep: collections.deque[object]) -> None:
    view = memoryview(bytearray(RING))
    r = w = got = 0
    while got < messages:
        if RING - w < 16384:  # a new ring: the old one lives on in its bodies
            pending = w - r
            fresh = memoryview(bytearray(RING))
            fresh[:pending] = view[r:w]
            view, r, w = fresh, 0, pending
        n = conn.recv_into(view[w:])
        if not n:
            raise EOFError
        w += n
        while w - r >= MESSAGE:
            keep.append(view[r + PRELUDE : r + MESSAGE])
            r += MESSAGE
            got += 1


def direct(conn: socket.socket, messages: int, keep: collections.deque[object]) -> None:
    fd = conn.fileno()
    prelude = memoryview(bytearray(PRELUDE))
    for _ in range(messages):
        read_exactly(fd, prelude)
        body = os.read(fd, BODY)
        while len(body) < BODY:  # (rare: the rest had not arrived yet)
            more = os.read(fd, BODY - len(body))
            if not more:
                raise EOFError
            body += more
        keep.append(body)


def into_bytearray(conn: socket.socket, messages: int, keep: collections.deque[object]) -> None:
    fd = conn.fileno()
    prelude = memoryview(bytearray(PRELUDE))
    for _ in range(messages):
        read_exactly(fd, prelude)
        body = bytearray(BODY)
        read_exactly(fd, memoryview(body))
        keep.append(body)


MODES: dict[str, Callable[[socket.socket, int, collections.deque[object]], None]] = {
    "ring": ring, "direct": direct, "bytearray": into_bytearray, "views": views}


def run(mode: str, messages: int) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    proc = multiprocessing.Process(target=writer, args=(listener.getsockname()[1], messages))
    proc.start()
    conn, _ = listener.accept()
    keep: collections.deque[object] = collections.deque(maxlen=KEEP)
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    MODES[mode](conn, messages, keep)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    user = (after.ru_utime - before.ru_utime) / messages * 1e6
    system = (after.ru_stime - before.ru_stime) / messages * 1e6
    print(f"| {mode} | {messages / elapsed:,.0f} | {user + system:.2f} | {user:.2f} | "
          f"{system:.2f} |", flush=True)
    conn.close()
    listener.close()
    proc.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modes", nargs="*", metavar="MODE", help=f"of {', '.join(MODES)} (all)")
    ap.add_argument("--messages", type=int, default=60000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    modes = args.modes or list(MODES)
    unknown = set(modes) - set(MODES)
    if unknown:
        ap.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    if not tune_allocator():
        print("(glibc's allocator thresholds could not be set: rings are mmap'd each time)")
    print("| mode | msg/s | CPU µs/msg | user | system |\n|---|---:|---:|---:|---:|")
    for _ in range(args.rounds):
        for mode in modes:
            run(mode, args.messages)


if __name__ == "__main__":
    main()
