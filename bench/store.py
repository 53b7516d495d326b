"""Benchmarks of the storage layer (leveret.store), without the broker.

    python bench/store.py                 # everything, about a minute
    python bench/store.py commit fanout   # some of: commit policies fanout recovery drain
    python bench/store.py --big           # adds 10 million messages: RSS and recovery
    python bench/store.py --dir /mnt/ssd  # where the data goes (default: a temp dir)

Figures and the machine they came from are in docs/storage.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from leveret.store import DiskStore, FsyncPolicy
from leveret.store.records import message_head

BODY = b"x" * 100


def fresh(base: Path, name: str) -> Path:
    path = base / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def bench_commit(base: Path, total: int = 200_000) -> None:
    """Group commit: appends of 100-byte messages to one queue, one commit (fsync) every
    ``batch`` messages, as publishers waiting for confirms would cause."""
    print("\n## append + commit, 1 queue, 100-byte messages, fsync=always")
    print("| messages per commit | messages/s | commits/s | µs per commit |")
    print("|---:|---:|---:|---:|")
    for batch in (1, 10, 100, 1000):
        n = min(total, batch * 2000)
        with DiskStore(fresh(base, "commit")) as store:
            log = store.open_queue("/", "q")
            store.commit()
            started = time.perf_counter()
            for i in range(n):
                log.append(BODY)
                if i % batch == batch - 1:
                    store.commit()
            took = time.perf_counter() - started
        print(f"| {batch} | {n / took:,.0f} | {n / batch / took:,.0f} | "
              f"{took / (n / batch) * 1e6:,.0f} |")


def bench_policies(base: Path, n: int = 200_000, batch: int = 100) -> None:
    print(f"\n## fsync policies, 1 queue, 100-byte messages, a commit every {batch}")
    print("| policy | messages/s |")
    print("|---|---:|")
    for policy in ("always", "interval:200", "off"):
        with DiskStore(fresh(base, "policy"), FsyncPolicy.parse(policy)) as store:
            log = store.open_queue("/", "q")
            started = time.perf_counter()
            for i in range(n):
                log.append(BODY)
                if i % batch == batch - 1:
                    store.commit()
            took = time.perf_counter() - started
        print(f"| {policy} | {n / took:,.0f} |")


def _shared_log(path: Path, queues: int, n: int, batch: int) -> float:
    """The alternative layout: every queue's records in one shared file, one fsync per
    commit. Returns the seconds spent committing (write + fdatasync)."""
    path.mkdir(parents=True)
    fd = os.open(path / "shared.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    buf = bytearray()
    in_commit = 0.0
    for i in range(n):
        for _ in range(queues):
            buf += message_head(i, BODY, len(BODY))
            buf += BODY
        if i % batch == batch - 1:
            t = time.perf_counter()
            os.write(fd, buf)
            buf.clear()
            os.fdatasync(fd)
            in_commit += time.perf_counter() - t
    os.close(fd)
    return in_commit


def bench_fanout(base: Path, n: int = 20_000, batch: int = 100) -> None:
    """Per-queue segment files (one fsync per dirty queue per commit, in parallel) against
    one shared log (one fsync per commit), each message routed to every queue."""
    print(f"\n## fan-out: each message to K durable queues, a commit every {batch} messages")
    print("| K queues | per-queue files: msg/s | µs per commit, parallel fsync | "
          "serial fsync | one shared log |")
    print("|---:|---:|---:|---:|---:|")
    commits = n // batch
    for k in (1, 4, 16):
        row = []
        for threads in (8, 1):
            with DiskStore(fresh(base, "fanout"), fsync_threads=threads) as store:
                logs = [store.open_queue("/", f"q{j}") for j in range(k)]
                store.commit()
                in_commit = 0.0
                started = time.perf_counter()
                for i in range(n):
                    for log in logs:
                        log.append(BODY)
                    if i % batch == batch - 1:
                        t = time.perf_counter()
                        store.commit()
                        in_commit += time.perf_counter() - t
                if threads > 1:
                    row.append(f"{n / (time.perf_counter() - started):,.0f}")
                row.append(f"{in_commit / commits * 1e6:,.0f}")
        row.append(f"{_shared_log(fresh(base, 'shared'), k, n, batch) / commits * 1e6:,.0f}")
        print(f"| {k} | " + " | ".join(row) + " |")


def _fill(path: Path, n: int, ack_every: int = 0) -> None:
    with DiskStore(path, FsyncPolicy("off")) as store:
        log = store.open_queue("/", "q")
        for i in range(n):
            log.append(BODY)
            if ack_every and i % ack_every == 0:
                log.ack(i)
            if i % 10_000 == 9_999:
                store.commit()


def bench_recovery(base: Path, n: int = 1_000_000) -> None:
    print(f"\n## recovery and index memory, {n:,} messages of 100 bytes in one queue")
    print("| case | open + recover | messages/s | index bytes per message |")
    print("|---|---:|---:|---:|")
    for case, ack_every in (("all live", 0), ("every 10th acked", 10)):
        path = fresh(base, "recovery")
        _fill(path, n, ack_every)
        tracemalloc.start()
        store = DiskStore(path)
        log = store.open_queue("/", "q")
        used = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        store.close()
        started = time.perf_counter()  # again without tracemalloc's overhead
        store = DiskStore(path)
        log = store.open_queue("/", "q")
        took = time.perf_counter() - started
        assert len(log) == n - (n // ack_every if ack_every else 0), len(log)
        store.close()
        print(f"| {case} | {took:.2f} s | {n / took:,.0f} | {used / n:.1f} |")


def bench_drain(base: Path, n: int = 1_000_000, batch: int = 1000) -> None:
    """A backlog on disk drained after a restart: page in 1000 at a time, read each body
    from disk, ack, commit every ``batch``; fully acked segments go as it runs."""
    path = fresh(base, "drain")
    _fill(path, n)
    store = DiskStore(path)
    log = store.open_queue("/", "q")
    seg_dir = log.dir
    before = len(list(seg_dir.glob("*.seg")))
    started = time.perf_counter()
    start = done = 0
    while batch_ := log.live(start, 1000):
        for x in batch_:
            log.read(x.offset)
            log.ack(x.offset)
        done += len(batch_)
        start = batch_[-1].offset + 1
        if done % batch == 0:
            store.commit()
    store.commit()
    took = time.perf_counter() - started
    after = len(list(seg_dir.glob("*.seg")))
    store.close()
    print(f"\n## drain {n:,} messages from disk after a restart (read + ack, fsync=always, "
          f"commit every {batch})")
    print(f"{n / took:,.0f} messages/s; segment files {before} before, {after} after "
          f"(reclaimed while draining)")


def bench_big(base: Path, n: int = 10_000_000) -> None:
    """10 million 100-byte messages in one queue, in a child process: its peak RSS."""
    code = f"""
import resource, sys, time
from leveret.store import DiskStore, FsyncPolicy
path, n = sys.argv[1], {n}
with DiskStore(path, FsyncPolicy("off")) as store:
    log = store.open_queue("/", "q")
    t = time.perf_counter()
    for i in range(n):
        log.append(b"x" * 100)
        if i % 100_000 == 99_999:
            store.commit()
    write = time.perf_counter() - t
rss_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
store = DiskStore(path)
log = store.open_queue("/", "q")
print(f"{{write:.1f}} {{time.perf_counter() - t:.1f}} {{rss_write}} {{len(log)}}")
"""
    path = fresh(base, "big")
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True,
                         capture_output=True, text=True).stdout.split()
    size = sum(f.stat().st_size for f in path.rglob("*.seg"))
    code2 = ("import resource, sys\nfrom leveret.store import DiskStore\n"
             "s = DiskStore(sys.argv[1]); log = s.open_queue('/', 'q')\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(log))")
    base_rss = subprocess.run([sys.executable, "-c", "import resource, leveret.store; print("
                               "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                              check=True, capture_output=True, text=True).stdout.strip()
    rss_recover, count = subprocess.run([sys.executable, "-c", code2, str(path)], check=True,
                                        capture_output=True, text=True).stdout.split()
    print(f"\n## {n:,} messages of 100 bytes in one queue")
    print(f"write {out[0]} s; recovery {out[1]} s ({int(count):,} messages); data on disk "
          f"{size / 2**30:.2f} GiB; peak RSS: {int(out[2]) / 1024:.0f} MiB writing, "
          f"{int(rss_recover) / 1024:.0f} MiB recovering (the interpreter alone: "
          f"{int(base_rss) / 1024:.0f} MiB)")
    shutil.rmtree(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="*", default=["commit", "policies", "fanout", "recovery",
                                                  "drain"])
    ap.add_argument("--big", action="store_true", help="also 10 million messages")
    ap.add_argument("--dir", type=Path, help="where to write (default: a temp dir)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="leveret-bench-", dir=args.dir))
    print(f"data in {base}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    try:
        for name in args.which:
            globals()[f"bench_{name}"](base)
        if args.big:
            bench_big(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
