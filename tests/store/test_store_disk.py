"""What only the disk store has: segments, reclaim, paging, fsync policies, the lock."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import leveret.store
from leveret.store import DiskStore, FsyncPolicy, StoreError, StoreLocked


def segments(store, vhost="/", name="q"):
    return sorted(store.open_queue(vhost, name).dir.glob("*.seg"))


def test_segments_roll_and_fully_acked_ones_are_reclaimed_while_running(disk):
    store = disk.store
    log = store.open_queue("/", "q")
    offsets = [log.append(bytes(100)) for _ in range(400)]
    store.commit()
    assert len(segments(store)) >= 10
    for o in offsets[:-1]:
        log.ack(o)
    store.commit()
    # only the segment holding the last message and the newest one remain
    assert len(segments(store)) <= 2
    assert [x.offset for x in log.live()] == [399]
    assert [x.offset for x in disk.reopen().open_queue("/", "q").live()] == [399]


def test_a_stuck_message_does_not_pin_the_segments_after_it(disk):
    store = disk.store
    log = store.open_queue("/", "q")
    offsets = [log.append(bytes(100)) for _ in range(600)]
    log.mark_delivered(5)
    log.set_delivery_count(5, 2)
    store.commit()
    # ack everything but offset 5, a few at a time: the acks of segment 0 spread over
    # later segments, which are then reclaimed (their records about segment 0 carried)
    for i, o in enumerate(offsets):
        if o != 5:
            log.ack(o)
        if i % 7 == 0:
            log.append(bytes(100))
            log.ack(log.next_offset - 1)
            store.commit()
    store.commit()
    assert len(segments(store)) <= 3
    log = disk.reopen().open_queue("/", "q")
    assert [(x.offset, x.delivery_count, x.redelivered) for x in log.live()] == [(5, 2, True)]


def test_reads_come_from_disk_and_survive_closing_read_descriptors(tmp_path):
    store = DiskStore(tmp_path, segment_bytes=4096, max_open_files=2)
    log = store.open_queue("/", "q")
    data = [os.urandom(50 + i % 200) for i in range(300)]
    offs = [log.append(d) for d in data]
    store.commit()
    for o in reversed(offs):  # every segment, more than the descriptors kept open
        assert log.read(o) == data[o]
    assert len(store._fds) <= 2
    store.close()


def test_large_messages_bypass_the_buffer(tmp_path):
    store = DiskStore(tmp_path)
    log = store.open_queue("/", "q")
    big = os.urandom(3 << 20)
    o1 = log.append(b"small")
    o2 = log.append([b"h", big])
    assert log.read(o2) == b"h" + big
    assert log.read(o1) == b"small"
    store.close()
    store = DiskStore(tmp_path)
    assert store.open_queue("/", "q").read(o2) == b"h" + big
    store.close()


def test_reading_unflushed_messages_from_the_buffer(tmp_path):
    with DiskStore(tmp_path) as store:
        log = store.open_queue("/", "q")
        o = log.append(b"buffered")
        assert log.buf  # not yet written
        assert log.read(o) == b"buffered"


def test_interval_policy_confirms_on_write_and_fsyncs_at_most_every_interval(tmp_path):
    store = DiskStore(tmp_path, FsyncPolicy("interval", 100))
    log = store.open_queue("/", "q")
    log.append(b"a")
    assert store.commit() == store.seq  # confirmable once written to the OS
    assert store.synced_seq < store.seq
    time.sleep(0.12)
    store.commit()
    assert store.synced_seq == store.seq
    store.close()


def test_off_policy_never_fsyncs(tmp_path, monkeypatch):
    import leveret.store.sync as sync

    calls = []
    monkeypatch.setattr(sync, "fsync_file", lambda fd: calls.append(fd))
    store = DiskStore(tmp_path, FsyncPolicy("off"))
    store.open_queue("/", "q").append(b"a")
    assert store.commit() == store.seq
    store.close()
    assert calls == []


def test_always_policy_fsyncs_once_per_commit_not_per_message(tmp_path, monkeypatch):
    import leveret.store.sync as sync

    calls = []
    real = sync.fsync_file
    monkeypatch.setattr(sync, "fsync_file", lambda fd: (calls.append(fd), real(fd)))
    store = DiskStore(tmp_path)
    log = store.open_queue("/", "q")
    store.commit()
    calls.clear()
    for _ in range(1000):
        log.append(b"x" * 100)
    store.commit()
    assert len(calls) == 1
    store.close()


def test_overlapping_syncs_finishing_out_of_order(tmp_path):
    store = DiskStore(tmp_path)
    a = store.open_queue("/", "a")
    b = store.open_queue("/", "b")
    a.append(b"1")
    first = store.flush()
    b.append(b"2")
    second = store.flush()
    assert set(first.files) <= {*first.files}  # captured descriptors are its own
    assert len(second.files) >= 2  # still covers a's file, the first sync has not run
    assert second.run() == second.seq
    assert first.run() == second.seq  # durable_seq never goes back
    store.close()


def test_lock_refuses_a_second_store_in_this_process(tmp_path):
    store = DiskStore(tmp_path)
    with pytest.raises(StoreLocked, match=str(os.getpid())):
        DiskStore(tmp_path)
    store.close()
    DiskStore(tmp_path).close()  # released on close


def test_lock_refuses_a_second_process(tmp_path):
    code = ("import sys, time; from leveret.store import DiskStore; "
            "s = DiskStore(sys.argv[1]); print('ready', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked) as info:
            DiskStore(tmp_path)
        assert f"pid {child.pid}" in str(info.value)
        assert "--data-dir" in str(info.value)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    DiskStore(tmp_path).close()  # a killed holder leaves no stale lock


def test_unknown_format_is_refused(tmp_path):
    (tmp_path / "FORMAT").write_text("leveret-store 99\n")
    with pytest.raises(StoreError, match="format"):
        DiskStore(tmp_path)
    (tmp_path / "FORMAT").write_text("leveret-store 1\n")
    DiskStore(tmp_path).close()  # and the lock was released by the failed open


def test_layout(tmp_path):
    store = DiskStore(tmp_path)
    store.open_queue("/", "q").append(b"x")
    store.open_queue("/", "t", transient=True).append(b"y")
    store.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["FORMAT", "LOCK", "definitions.log", "queues", "transient", "trash"]
    (qdir,) = (tmp_path / "queues").iterdir()
    assert sorted(p.name for p in qdir.iterdir()) == ["00000000000000000000.seg", "QUEUE"]


def test_the_store_never_imports_asyncio():
    root = Path(leveret.store.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in ("asyncio", "socket", "ssl"), path
                assert not name.startswith(("leveret.broker", "leveret.server")), path


def crash(store):
    """Leave a store as kill -9 would: written data stays, nothing more is flushed."""
    store._closed = True
    store._pool.shutdown()
    os.close(store._lock_fd)


def test_a_consumer_that_keeps_up_leaves_one_or_two_segments(disk):
    store = disk.store
    log = store.open_queue("/", "q")
    for _ in range(500):
        log.ack(log.append(bytes(100)))
        store.commit()
    assert len(segments(store)) <= 2
    assert log.next_offset == 500


def test_a_segment_rolled_just_before_a_crash_keeps_its_acks(tmp_path):
    store = DiskStore(tmp_path, segment_bytes=4096)
    log = store.open_queue("/", "q")
    for _ in range(50):
        log.append(bytes(100))
    log.purge(keep=[3, 7])  # ends with a new, empty newest segment
    log.ack(3)  # recorded in that empty segment
    store.commit()
    crash(store)
    store = DiskStore(tmp_path, segment_bytes=4096)
    log = store.open_queue("/", "q")
    assert [x.offset for x in log.live()] == [7]
    assert log.append(b"next") == 50  # appended to the recovered empty segment
    store.commit()
    crash(store)
    with DiskStore(tmp_path) as store:
        log = store.open_queue("/", "q")
        assert [x.offset for x in log.live()] == [7, 50]
        assert log.read(50) == b"next"


def test_what_was_flushed_survives_a_crash_without_commit_run(tmp_path):
    store = DiskStore(tmp_path, FsyncPolicy("off"))
    log = store.open_queue("/", "q")
    for i in range(10):
        log.append(b"%d" % i)
    log.ack(2)
    log.mark_delivered(4)
    store.flush()  # written to the OS: enough for kill -9
    log.append(b"lost")  # only in the buffer
    crash(store)
    with DiskStore(tmp_path) as store:
        live = store.open_queue("/", "q").live()
    assert [x.offset for x in live] == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    assert live[3].redelivered


def test_a_deleted_queue_is_gone_from_disk_after_the_next_sync(tmp_path):
    store = DiskStore(tmp_path)
    log = store.open_queue("/", "q")
    log.append(b"x")
    store.commit()
    log.delete()
    assert list((tmp_path / "queues").iterdir()) == []
    store.commit()
    assert list((tmp_path / "trash").iterdir()) == []
    store.close()


def test_a_queue_declared_again_before_a_sync_runs_keeps_its_files(tmp_path):
    store = DiskStore(tmp_path, segment_bytes=4096)
    log = store.open_queue("/", "q")
    offsets = [log.append(bytes(100)) for _ in range(100)]
    store.commit()
    for o in offsets:
        log.ack(o)
    late = store.flush()  # reclaimed segments wait for this sync to be unlinked
    assert late.unlink
    log.delete()
    again = store.open_queue("/", "q")
    for _ in range(100):
        again.append(bytes(100))
    store.commit()
    late.run()
    store.close()
    with DiskStore(tmp_path) as store:
        assert len(store.open_queue("/", "q")) == 100


def test_recovery_logs_progress_and_a_summary(tmp_path, monkeypatch, caplog):
    import logging

    import leveret.store.recovery as recovery

    with DiskStore(tmp_path, segment_bytes=4096) as store:
        log = store.open_queue("/", "big")
        for _ in range(200):
            log.append(bytes(100))
    monkeypatch.setattr(recovery, "PROGRESS_EVERY", 0)
    caplog.set_level(logging.DEBUG, "leveret.store")
    with DiskStore(tmp_path) as store:
        store.open_queue("/", "big")
    lines = [r.getMessage() for r in caplog.records]
    assert any("queue 'big' in vhost '/': recovering, " in m and "% of" in m for m in lines)
    assert any("recovered 200 messages" in m for m in lines)


def test_a_long_drain_deletes_segments_as_it_goes(disk):
    """Paging reads a backlog back in batches and acks it as consumers do: every segment
    whose messages were all acked is deleted at the next commit, during the drain. The
    transient messages of a paging queue count too: their acks write no records, but a
    segment that empties makes a commit due (seq moves), so its file goes as well."""
    store = disk.store
    log = store.open_queue("/", "q")
    scratch = store.open_queue("/", "paged", transient=True)
    body = b"x" * 200
    offs = [log.append(body, persistent=i % 2 == 0) for i in range(400)]
    tmp = [scratch.append(body) for _ in range(400)]
    store.commit()
    full = (len(segments(store)), len(list((disk.path / "transient").glob("*/*.seg"))))
    assert min(full) >= 20
    seen = []
    for i in range(0, 400, 50):
        before = store.seq
        for q, part in ((log, offs[i:i + 50]), (scratch, tmp[i:i + 50])):
            assert all(bytes(r) == body for r in q.read_many(part))
            for o in part:
                q.ack(o)
        assert store.seq > before  # a commit is due even for the transient log
        store.commit()
        seen.append((len(segments(store)), len(list((disk.path / "transient").glob("*/*.seg")))))
    assert seen[3][0] <= full[0] // 2 + 1 and seen[3][1] <= full[1] // 2 + 1
    assert seen[-1][0] <= 2 and seen[-1][1] <= 2


def queue_bytes(log) -> int:
    return sum(p.stat().st_size for p in log.dir.glob("*.seg"))


def test_an_acked_large_message_leaves_the_newest_segment_at_the_next_flush(disk):
    """A message larger than a segment, consumed: its segment is the newest, with nothing
    live, and nothing else to append would ever roll it. The flush after the ack rolls it
    and reclaim deletes it, without a restart; the messages around it are intact."""
    store = disk.store
    log = store.open_queue("/", "q")
    small = log.append(b"before")
    store.commit()
    big = log.append(bytes(64 << 10))
    store.commit()
    assert queue_bytes(log) > 64 << 10
    log.ack(small)
    log.ack(big)
    store.commit()
    assert queue_bytes(log) < 4096 // 2
    assert len(segments(store)) == 1
    after = log.append(b"after")
    store.commit()
    assert log.read(after) == b"after"
    store = disk.reopen()
    log = store.open_queue("/", "q")
    assert [x.offset for x in log.live()] == [after]
    assert log.read(after) == b"after"


def test_an_acked_newest_segment_with_a_live_older_one(disk):
    """The newest segment held acks of an older segment's messages; rolling it at a flush
    re-records them (the reclaim snapshot), so after a restart they stay acked."""
    store = disk.store
    log = store.open_queue("/", "q")
    old = [log.append(bytes(100)) for _ in range(3)]
    log.new_segment()
    big = log.append(bytes(8192))
    store.commit()
    log.ack(old[0])
    log.ack(old[2])
    log.ack(big)
    store.commit()
    assert sum(p.stat().st_size for p in segments(store)) < 4096
    assert [x.offset for x in log.live()] == [old[1]]
    assert [x.offset for x in disk.reopen().open_queue("/", "q").live()] == [old[1]]


def test_a_small_drained_newest_segment_is_not_rolled(disk):
    """Below half a segment an emptied newest segment stays: a queue drained at every
    flush must not create and delete a file per commit."""
    store = disk.store
    log = store.open_queue("/", "q")
    first = segments(store)
    for _ in range(5):
        log.ack(log.append(bytes(100)))
        store.commit()
    assert segments(store) == first
