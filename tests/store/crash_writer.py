"""Child process of the crash tests: appends, acks and marks in batches, commits each batch,
and reports on stdout what each commit covered, until it is killed with SIGKILL.

    python crash_writer.py DATA_DIR POLICY SEED [drain]

Before each commit, one line: appended offsets | acked offsets | offsets marked delivered
(space-separated); after the commit returns, the line "ok". A batch without its "ok" may
or may not have reached the disk. With "drain", some batches ack every live message, so
the newest segment empties and is rolled and reclaimed by the commit (segments.py).
"""

from __future__ import annotations

import random
import sys

from leveret.store import DiskStore, FsyncPolicy


def payload(offset: int) -> bytes:
    return b"%d:" % offset + bytes([offset % 251]) * (offset * 7 % 300)


def main() -> None:
    path, policy, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    drain = sys.argv[4:] == ["drain"]
    rng = random.Random(seed)
    store = DiskStore(path, FsyncPolicy.parse(policy), segment_bytes=32768)
    log = store.open_queue("/", "q")
    live = [x.offset for x in log.live()]
    for o in live:
        assert log.read(o) == payload(o), o
    out = sys.stdout
    print("ready", flush=True)
    while True:
        appended, acked, marked = [], [], []
        for _ in range(rng.randint(1, 40)):
            o = log.next_offset
            assert log.append(payload(o)) == o
            appended.append(o)
        live += appended
        for _ in range(rng.randint(0, 35)):
            if live:
                o = live.pop(rng.randrange(len(live)) if rng.random() < 0.3 else 0)
                log.ack(o)
                acked.append(o)
        if drain and rng.random() < 0.4:
            for o in live:
                log.ack(o)
            acked += live
            live = []
        if live and rng.random() < 0.5:
            o = rng.choice(live)
            log.mark_delivered(o)
            log.set_delivery_count(o, rng.randint(1, 5))
            marked.append(o)
        out.write("|".join(" ".join(map(str, xs)) for xs in (appended, acked, marked)) + "\n")
        out.flush()
        store.commit()
        out.write("ok\n")
        out.flush()


if __name__ == "__main__":
    main()
