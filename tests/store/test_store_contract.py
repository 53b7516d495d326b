"""The storage contract (leveret/store/base.py), run against MemoryStore and DiskStore."""

from __future__ import annotations

import pytest

from leveret.store import FsyncPolicy, Live, StoreClosed, pack_message, unpack_message


def fill(log, n, prefix=b"m"):
    return [log.append(prefix + str(i).encode()) for i in range(n)]


def test_offsets_start_at_zero_and_grow_by_one(backend):
    log = backend.store.open_queue("/", "q")
    assert fill(log, 5) == [0, 1, 2, 3, 4]
    assert log.next_offset == 5
    assert log.read(3) == b"m3"
    assert len(log) == 5 and log.bytes == 10


def test_append_parts_and_read_back(backend):
    log = backend.store.open_queue("/", "q")
    off = log.append([b"head-", b"", b"body"])
    assert log.read(off) == b"head-body"
    assert log.live() == [Live(off, 9, 0, False)]


def test_append_many_is_append_one_by_one(backend):
    """A sub-entry batch's further offsets (broker/queues/stream.py): the same records,
    read back, counted, acked and recovered like appended ones."""
    store = backend.store
    log = store.open_queue("/", "q")
    log.append(b"first")
    seq = store.seq
    assert log.append_many([b"a", b"bb", b"", b"ccc"]) == 1
    assert log.append_many([]) == 5
    assert store.seq > seq
    assert log.next_offset == 5 and len(log) == 5 and log.bytes == 11
    assert log.read_many(range(5)) == [b"first", b"a", b"bb", b"", b"ccc"]
    log.ack(2)
    store.commit()
    log = backend.reopen().open_queue("/", "q")
    assert [(x.offset, x.size) for x in log.live()] == [(0, 5), (1, 1), (3, 0), (4, 3)]
    assert log.read(4) == b"ccc" and log.append(b"after") == 5
    scratch = backend.store.open_queue("/", "tmp", transient=True)
    assert scratch.append_many([b"x", b"y"]) == 0 and scratch.read(1) == b"y"


def test_read_or_ack_of_unknown_offset_raises_key_error(backend):
    log = backend.store.open_queue("/", "q")
    fill(log, 2)
    for bad in (2, 99, -1):
        with pytest.raises(KeyError):
            log.read(bad)
        with pytest.raises(KeyError):
            log.ack(bad)


def test_ack_removes_the_message_once(backend):
    log = backend.store.open_queue("/", "q")
    fill(log, 3)
    log.ack(1)
    assert [x.offset for x in log.live()] == [0, 2]
    assert len(log) == 2 and log.bytes == 4
    with pytest.raises(KeyError):
        log.read(1)
    with pytest.raises(KeyError):
        log.ack(1)
    with pytest.raises(KeyError):
        log.mark_delivered(1)


def test_marks_and_counts(backend):
    log = backend.store.open_queue("/", "q")
    fill(log, 4)
    log.mark_delivered(1)
    log.mark_delivered(1)
    log.set_delivery_count(2, 3)
    log.set_delivery_count(3, 2)
    log.set_delivery_count(3, 0)
    assert log.live() == [Live(0, 2, 0, False), Live(1, 2, 0, True), Live(2, 2, 3, True),
                          Live(3, 2, 0, False)]


def test_live_from_a_start_with_a_limit(backend):
    log = backend.store.open_queue("/", "q")
    fill(log, 10)
    log.ack(4)
    assert [x.offset for x in log.live(3, 3)] == [3, 5, 6]
    assert [x.offset for x in log.live(8)] == [8, 9]
    assert log.live(10) == []


def test_purge_keeps_the_deliveries_awaiting_acks_and_offsets_go_on(backend):
    log = backend.store.open_queue("/", "q")
    fill(log, 6)
    log.mark_delivered(2)
    assert log.purge(keep=[2, 4, 77]) == 4
    assert log.live() == [Live(2, 2, 0, True), Live(4, 2, 0, False)]
    assert log.append(b"x") == 6
    backend.store.commit()
    log = backend.reopen().open_queue("/", "q")
    assert [x.offset for x in log.live()] == [2, 4, 6]
    assert log.next_offset == 7


def test_delete_drops_the_log_and_a_new_one_starts_over(backend):
    store = backend.store
    log = store.open_queue("/", "q")
    fill(log, 3)
    store.commit()
    log.delete()
    assert ("/", "q") not in store.queues()
    log.ack(0)  # a late ack from a channel: ignored
    log.mark_delivered(1)
    with pytest.raises(StoreClosed):
        log.append(b"x")
    with pytest.raises(StoreClosed):
        log.read(0)
    again = store.open_queue("/", "q")
    assert len(again) == 0 and again.next_offset == 0
    store.commit()
    assert len(backend.reopen().open_queue("/", "q")) == 0


def test_delete_of_a_log_not_opened_since_restart(backend):
    fill(backend.store.open_queue("/", "q"), 2)
    store = backend.reopen()
    assert store.queues() == [("/", "q")]
    store.delete_queue("/", "q")
    store.commit()
    assert backend.reopen().queues() == []


def test_seq_counts_durable_changes_and_commit_covers_them(backend):
    store = backend.store
    log = store.open_queue("/", "q")
    scratch = store.open_queue("/", "tmp", transient=True)
    before = store.seq
    fill(log, 3)
    assert store.seq == before + 3
    log.append(b"t", persistent=False)
    scratch.append(b"t")
    assert store.seq == before + 3  # transient messages never wait for a commit
    assert store.commit() >= store.seq == store.durable_seq
    log.ack(0)
    assert store.seq > store.durable_seq
    sync = store.flush()
    assert sync.seq == store.seq
    assert sync.run() == store.durable_seq == sync.seq


def test_restart_keeps_persistent_unacked_messages_with_their_marks(backend):
    store = backend.store
    log = store.open_queue("/", "q")
    fill(log, 6)
    log.append(b"transient", persistent=False)  # offset 6
    log.ack(0)
    log.mark_delivered(1)
    log.set_delivery_count(2, 4)
    scratch = store.open_queue("/", "tmp", transient=True)
    scratch.append(b"gone")
    store.commit()
    store = backend.reopen()
    assert store.queues() == [("/", "q")]
    log = store.open_queue("/", "q")
    assert log.live() == [Live(1, 2, 0, True), Live(2, 2, 4, True), Live(3, 2, 0, False),
                          Live(4, 2, 0, False), Live(5, 2, 0, False)]
    assert log.read(5) == b"m5"
    assert log.next_offset == 7
    assert log.append(b"after") == 7
    assert len(store.open_queue("/", "tmp", transient=True)) == 0


def test_restart_twice_keeps_acks_made_after_the_first(backend):
    fill(backend.store.open_queue("/", "q"), 4)
    log = backend.reopen().open_queue("/", "q")
    log.ack(1)
    log.set_delivery_count(2, 1)
    backend.store.commit()
    log = backend.reopen().open_queue("/", "q")
    assert log.live() == [Live(0, 2, 0, False), Live(2, 2, 1, True), Live(3, 2, 0, False)]


def test_closing_one_log_keeps_its_data(backend):
    log = backend.store.open_queue("/", "q")
    fill(log, 2)
    log.close()
    assert [x.offset for x in backend.store.open_queue("/", "q").live()] == [0, 1]


def test_queues_are_told_apart_by_vhost(backend):
    a = backend.store.open_queue("a", "q")
    b = backend.store.open_queue("b", "q")
    a.append(b"in a")
    assert len(b) == 0
    store = backend.reopen()
    assert sorted(store.queues()) == [("a", "q"), ("b", "q")]
    assert store.open_queue("a", "q").read(0) == b"in a"


def test_definitions_put_delete_replay(backend):
    defs = backend.store.definitions
    defs.put("queue", "/\x00orders", {"durable": True, "arguments": {"x-max-length": 10}})
    defs.put("exchange", "/\x00ex", {"type": "topic"})
    defs.put("user", "guest", {"password_hash": "abc", "tags": ["administrator"]})
    defs.put("exchange", "/\x00ex", {"type": "fanout"})
    defs.put("binding", "b1", None)
    defs.delete("binding", "b1")
    defs.delete("binding", "never-there")
    with pytest.raises(TypeError):
        defs.put("queue", "bad", object())
    value = defs.get("queue")
    value["/\x00orders"]["durable"] = False  # a copy: the store is unchanged
    backend.store.commit()
    defs = backend.reopen().definitions
    assert defs.get("exchange") == {"/\x00ex": {"type": "fanout"}}
    assert defs.get("queue") == {"/\x00orders": {"durable": True,
                                                 "arguments": {"x-max-length": 10}}}
    assert sorted(defs.kinds()) == ["exchange", "queue", "user"]
    assert defs.get("binding") == {}


def test_definitions_change_the_seq(backend):
    before = backend.store.seq
    backend.store.definitions.put("vhost", "/", {})
    assert backend.store.seq > before


def test_message_codec_round_trip():
    parts = pack_message("amq.topic", "a.b", b"\x10\x00\x02", b"body" * 3, expires_at=12.5)
    assert unpack_message(b"".join(parts)) == ("amq.topic", "a.b", b"\x10\x00\x02",
                                               b"body" * 3, 12.5)
    assert unpack_message(b"".join(pack_message("", "q", b"", b"")))[4] is None


@pytest.mark.parametrize(("text", "policy"), [
    ("always", FsyncPolicy("always", 200)),
    ("interval", FsyncPolicy("interval", 200)),
    ("interval:50", FsyncPolicy("interval", 50)),
    ("off", FsyncPolicy("off")),
])
def test_fsync_policy_parse(text, policy):
    assert FsyncPolicy.parse(text) == policy


@pytest.mark.parametrize("bad", ["sometimes", "always:5", "interval:x", ""])
def test_fsync_policy_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        FsyncPolicy.parse(bad)


def test_default_policy_is_safe():
    assert FsyncPolicy().mode == "always"


def test_live_batches_are_the_live_index_as_arrays(backend):
    log = backend.store.open_queue("/", "q")
    fill(log, 12)
    log.ack(0)
    log.ack(7)
    log.mark_delivered(3)
    log.set_delivery_count(5, 2)
    batches = list(log.live_batches())
    offsets = [o for b in batches for o in b.offsets]
    assert offsets == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11]
    sizes = [s for b in batches for s in b.sizes]
    assert sizes == [len(b"m%d" % o) for o in offsets]
    redelivered = [o for b in batches for o, r in zip(b.offsets, b.redelivered, strict=True) if r]
    assert redelivered == [3, 5]
    assert {o: c for b in batches for o, c in b.counts.items()} == {5: 2}
    assert [o for b in log.live_batches(9) for o in b.offsets] == [9, 10, 11]
    assert list(log.live_batches(12)) == []


def test_read_many_reads_what_read_reads(backend):
    log = backend.store.open_queue("/", "q")
    offs = fill(log, 40)
    backend.store.commit()  # some written, then some still buffered
    offs += [log.append(b"late%d" % i) for i in range(5)]
    log.ack(3)
    wanted = [o for o in offs if o != 3]
    assert [bytes(r) for r in log.read_many(wanted)] == [log.read(o) for o in wanted]
    assert log.read_many([]) == []
    with pytest.raises(KeyError):
        log.read_many([2, 3])


def test_ack_runs_acks_the_live_messages_of_whole_ranges(backend):
    log = backend.store.open_queue("/", "q")
    fill(log, 20)
    log.ack(5)
    log.set_delivery_count(6, 1)
    assert log.ack_runs([(0, 8), (15, 10)]) == 12  # 5 was acked already; 20.. unknown
    assert [x.offset for x in log.live()] == [8, 9, 10, 11, 12, 13, 14]
    assert len(log) == 7 and log.bytes == sum(len(b"m%d" % o) for o in range(8, 15))
    backend.store.commit()
    log = backend.reopen().open_queue("/", "q")
    assert [x.offset for x in log.live()] == [8, 9, 10, 11, 12, 13, 14]
