"""Corruption on copies of real data files: a torn or truncated tail, bad checksums, bad
lengths, a missing segment, a bad header, a broken definitions log. Each time: a clear log
line, the bad record skipped, every good record kept, and the store opens."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
from pathlib import Path

import pytest

from leveret.store import CorruptRecord, DiskStore
from leveret.store import records as rec


def payload(offset: int) -> bytes:
    return b"%d:" % offset + bytes([offset % 251]) * (40 + offset % 60)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A data directory written by the store: 7 or so segments of one queue with acks
    and marks in them, the last records of the newest segment messages; definitions."""
    path = tmp_path_factory.mktemp("pristine")
    store = DiskStore(path, segment_bytes=4096)
    store.definitions.put("vhost", "/", {})
    for i in range(5):
        store.definitions.put("queue", f"/\x00q{i}", {"durable": True})
    log = store.open_queue("/", "q")
    for _ in range(200):
        log.append(payload(log.next_offset))
    for o in range(0, 200, 10):
        log.ack(o)
    log.mark_delivered(11)
    log.set_delivery_count(12, 2)
    store.commit()
    for _ in range(5):
        log.append(payload(log.next_offset))
    store.close()
    probe = tmp_path_factory.mktemp("probe") / "data"
    shutil.copytree(path, probe)
    with DiskStore(probe) as store:
        expected = {x.offset: x for x in store.open_queue("/", "q").live()}
    return path, expected


@pytest.fixture
def data(pristine, tmp_path):
    src, expected = pristine
    shutil.copytree(src, tmp_path / "data")
    return tmp_path / "data", expected


def seg_files(path: Path) -> list[Path]:
    return sorted(path.glob("queues/*/*.seg"))  # the one queue's


def messages_in(seg: Path) -> list[tuple[int, int, int]]:
    """(position, payload length, offset) of each message record of a segment file."""
    data = seg.read_bytes()
    return [(pos, n, rec.U64.unpack_from(data, pos + rec.HEADER_SIZE)[0])
            for pos, t, _f, n in rec.Scanner(data, rec.FILE_HEADER.size, len(data))
            if t == rec.MSG]


def flip(path: Path, position: int, mask: int = 0xFF) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ mask]))


def reopen(path: Path) -> dict:
    with DiskStore(path) as store:
        log = store.open_queue("/", "q")
        live = {x.offset: x for x in log.live()}
        for o in live:
            assert log.read(o) == payload(o)
        return live


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_pristine_data_opens_without_a_warning(data, caplog):
    path, expected = data
    assert reopen(path) == expected
    assert warnings(caplog) == []


def test_torn_tail_is_truncated_and_logged_once(data, caplog):
    path, expected = data
    last = seg_files(path)[-1]
    pos, _n, offset = messages_in(last)[-1]
    os.truncate(last, pos + 15)  # the last message half written
    live = reopen(path)
    assert live == {o: x for o, x in expected.items() if o != offset}
    (line,) = warnings(caplog)
    assert "torn" in line and last.name in line and "queue 'q'" in line
    # truncated at the torn record; reopening then seals it (one SEALED record appended)
    assert last.stat().st_size == pos + len(rec.record(rec.SEALED, bytes(8)))
    caplog.clear()
    assert reopen(path) == live
    assert warnings(caplog) == []


def test_garbage_after_the_last_record_loses_nothing(data, caplog):
    path, expected = data
    with open(seg_files(path)[-1], "ab") as f:
        f.write(b"LV\x01\x00" + os.urandom(37))
    assert reopen(path) == expected
    assert any("torn" in w for w in warnings(caplog))


@pytest.mark.parametrize("where", ["body", "offset", "length", "magic", "crc"])
def test_a_bad_message_record_is_skipped_and_every_other_kept(data, caplog, where):
    path, expected = data
    seg = seg_files(path)[2]
    pos, n, offset = next(m for m in messages_in(seg)[3:] if m[2] in expected)
    at = {"body": pos + 20 + n // 2, "offset": pos + 13, "length": pos + 5, "magic": pos,
          "crc": pos + 9}[where]
    flip(seg, at, 0x10)
    live = reopen(path)
    assert live == {o: x for o, x in expected.items() if o != offset}
    (line,) = warnings(caplog)
    assert f"bad record at position {pos}" in line and seg.name in line


def test_a_missing_segment_is_reported_and_the_others_kept(data, caplog):
    path, expected = data
    files = seg_files(path)
    gone = files[3]
    lost = {o for _p, _n, o in messages_in(gone)}
    gone.unlink()
    live = reopen(path)
    assert live == {o: x for o, x in expected.items() if o not in lost}
    (line,) = warnings(caplog)
    assert f"{gone.name} is missing" in line


def test_a_missing_first_segment_is_reported(data, caplog):
    path, expected = data
    first = seg_files(path)[0]
    lost = {o for _p, _n, o in messages_in(first)}
    first.unlink()
    assert reopen(path) == {o: x for o, x in expected.items() if o not in lost}
    assert any(f"{first.name} is missing" in w for w in warnings(caplog))


def test_a_bad_segment_header_still_yields_its_records(data, caplog):
    path, expected = data
    seg = seg_files(path)[1]
    flip(seg, 2)
    assert reopen(path) == expected
    assert any("bad segment header" in w for w in warnings(caplog))


def test_an_empty_segment_left_by_a_crash_is_removed(data, caplog):
    path, expected = data
    stray = seg_files(path)[-1].parent / f"{10**9:020d}.seg"
    stray.write_bytes(b"LVSEG")
    assert reopen(path) == expected
    assert not stray.exists()
    assert any("empty" in w for w in warnings(caplog))


def test_a_bad_ack_record_brings_its_messages_back_and_nothing_else(data, caplog):
    path, expected = data
    seg = next(f for f in seg_files(path) if rec.record(rec.ACK, b"")[:4] in f.read_bytes())
    raw = seg.read_bytes()
    acks = [(pos, n) for pos, t, _f, n in rec.Scanner(raw, 16, len(raw)) if t == rec.ACK]
    pos, n = acks[0]
    back = {f + i for f, c in rec.decode_ranges(raw, pos + 12, n) for i in range(c)}
    flip(seg, pos + 12)
    live = reopen(path)
    assert set(live) - set(expected) <= back  # at least once: acked messages may return
    assert set(expected) <= set(live)
    assert len(warnings(caplog)) == 1


def test_a_queue_directory_without_its_name_file_is_set_aside(data, caplog):
    path, _expected = data
    (seg_files(path)[0].parent / "QUEUE").unlink()
    with DiskStore(path) as store:
        assert store.queues() == []
    assert any("no readable QUEUE file" in w for w in warnings(caplog))


def test_a_bad_definition_is_skipped_and_the_others_kept(data, caplog):
    path, _expected = data
    defs = path / "definitions.log"
    raw = defs.read_bytes()
    records = list(rec.Scanner(raw, 16, len(raw)))
    flip(defs, records[2][0] + 14)
    with DiskStore(path) as store:
        queues = store.definitions.get("queue")
    assert len(queues) == 4 and store.definitions.get("vhost") == {"/": {}}
    assert any("bad record" in w for w in warnings(caplog))


def test_a_truncated_definitions_log_keeps_every_whole_record(data, caplog):
    path, _expected = data
    defs = path / "definitions.log"
    os.truncate(defs, defs.stat().st_size - 3)
    with DiskStore(path) as store:
        assert len(store.definitions.get("queue")) == 4
        store.definitions.put("queue", "/\x00new", {})
    with DiskStore(path) as store:
        assert len(store.definitions.get("queue")) == 5
    assert any("torn" in w for w in warnings(caplog))


def test_bit_rot_while_running_fails_the_read_not_the_store(data):
    path, expected = data
    with DiskStore(path) as store:
        log = store.open_queue("/", "q")
        seg = seg_files(path)[1]
        pos, n, offset = messages_in(seg)[1]
        flip(seg, pos + 12 + n - 1)  # the last byte of the record
        with pytest.raises(CorruptRecord, match=f"message {offset}"):
            log.read(offset)
        log.ack(offset)  # the broker drops it and goes on
        others = [o for o in expected if o != offset]
        assert [log.read(o) for o in others] == [payload(o) for o in others]


@pytest.mark.parametrize("seed", range(12))
def test_random_byte_flips_never_stop_the_store_nor_lose_untouched_messages(data, seed):
    path, expected = data
    rng = random.Random(seed)
    files = seg_files(path)
    spans = {}  # offset -> (file, start, end) of its message record
    for f in files:
        for pos, n, o in messages_in(f):
            spans[o] = (f, pos, pos + 12 + n)
    hit = []
    for _ in range(rng.randint(1, 8)):
        f = rng.choice(files)
        at = rng.randrange(f.stat().st_size)
        flip(f, at, 1 << rng.randrange(8))
        hit.append((f, at))
    with DiskStore(path) as store:
        log = store.open_queue("/", "q")
        live = {x.offset for x in log.live()}
        for o in live:
            with contextlib.suppress(CorruptRecord):  # detected, never wrong data
                assert log.read(o) == payload(o)
    touched = {o for o, (f, a, b) in spans.items() if any(f == g and a <= x < b
                                                          for g, x in hit)}
    assert set(expected) - touched <= live


def test_a_crash_during_a_roll_loses_nothing_and_warns_nothing(tmp_path, caplog):
    """Killed just after a roll sealed the old segment and before the new one's first
    bytes were written: the newest file is empty (it is created before SEALED names it),
    so recovery removes it quietly; before, it warned that messages from its offset on
    were lost, though no message had ever been in it."""
    store = DiskStore(tmp_path / "data", segment_bytes=4096)
    store.definitions.put("vhost", "/", {})
    store.definitions.put("queue", "/\x00q", {"durable": True})
    log = store.open_queue("/", "q")
    rolled = len(log.segments)
    committed = 0
    while len(log.segments) == rolled:
        log.append(payload(log.next_offset))
        if len(log.segments) == rolled:
            store.commit()
            committed = log.next_offset
    newest = log.segments[-1].path
    assert newest.stat().st_size == 0 and committed > 1  # the "kill": no commit, no close
    expected = set(range(committed))
    shutil.copytree(tmp_path / "data", tmp_path / "after")  # as the "killed" process left it
    caplog.clear()
    assert set(reopen(tmp_path / "after")) == expected
    assert warnings(caplog) == []
