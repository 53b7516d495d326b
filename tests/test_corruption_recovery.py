"""Corruption at the broker level, on copies of a data directory written by a real
``leveret serve`` process: a truncated segment tail (at several points, in the newest and
in a sealed segment), bytes flipped inside records, a whole segment file deleted, a damaged
definitions log. Each time a broker starts on the copy, logs one clear line naming the
problem, skips the bad record, keeps every good one (exact sets of message ids, with their
redelivered flags) and serves clients.

The expected sets come from the untouched files, read by a small parser here (the record
format of docs/storage.md) and replayed without the damaged records: a lost message record
loses that message; a lost ACK record brings its messages back (at least once, never lost).
tests/store/test_store_corruption.py covers the same cases at the store level.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import struct
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import pika
import pytest
from served import serve

import leveret

RECORD = struct.Struct("<HBBII")  # magic, type, flags, length, crc32
FILE_HEADER = 16
MSG, ACK, DELIVERED, COUNT = 1, 2, 3, 4
RANGE = struct.Struct("<QI")  # first offset, count
BIG = 300_000  # above the store's 256 KiB: written with writev, straight to the file

QUEUE, OTHER = "orders", "audit"


def body_of(n: int) -> bytes:
    size = BIG if n % 3 == 0 and n < 180 else 200 + n * 7 % 500
    return b"id=%d;" % n + bytes([n % 251]) * size


# -- the data directory written by a real broker -----------------------------------------


@dataclass
class Record:
    segment: str
    pos: int
    rtype: int
    length: int  # of the payload
    offset: int = -1  # MSG: the message's offset
    id: int = -1  # MSG: the message's id
    ranges: list[tuple[int, int]] = field(default_factory=list)  # ACK / DELIVERED / COUNT

    @property
    def end(self) -> int:
        return self.pos + 12 + self.length


@dataclass
class Pristine:
    data: Path
    queue_dir: str  # of queue ``orders``
    records: list[Record]  # of queue ``orders``, segment by segment, in file order
    segments: list[str]
    other_ids: set[int]  # the messages of queue ``audit``

    def seg_path(self, data: Path, name: str) -> Path:
        return data / "queues" / self.queue_dir / name

    def live(self, drop: set[tuple[str, int]] = frozenset()  # type: ignore[assignment]
             ) -> dict[int, bool]:
        """Replay the records but ``drop`` ((segment, position) pairs): live id ->
        redelivered (delivered mark or a delivery count)."""
        by_offset: dict[int, int] = {}
        live: dict[int, bool] = {}
        for r in self.records:
            if (r.segment, r.pos) in drop:
                continue
            if r.rtype == MSG:
                by_offset[r.offset] = r.id
                live[r.id] = False
            elif r.rtype in (ACK, DELIVERED):
                for first, count in r.ranges:
                    for off in range(first, first + count):
                        n = by_offset.get(off)
                        if n is None or n not in live:
                            continue
                        if r.rtype == ACK:
                            del live[n]
                        else:
                            live[n] = True
            elif r.rtype == COUNT:
                for off, count in r.ranges:
                    n = by_offset.get(off)
                    if count and n in live:
                        live[n] = True
        return live

    def in_segment(self, name: str, rtype: int = MSG) -> list[Record]:
        return [r for r in self.records if r.segment == name and r.rtype == rtype]


def _parse(path: Path) -> list[Record]:
    data = path.read_bytes()
    out = []
    pos = FILE_HEADER
    while pos + 12 <= len(data):
        magic, rtype, _flags, length, _crc = RECORD.unpack_from(data, pos)
        assert magic == 0x564C, f"{path.name}: no record at {pos}"
        r = Record(path.name, pos, rtype, length)
        payload = data[pos + 12:pos + 12 + length]
        if rtype == MSG:
            r.offset = struct.unpack_from("<Q", payload)[0]
            found = re.search(rb"id=(\d+);", payload)
            assert found is not None
            r.id = int(found[1])
        elif rtype in (ACK, DELIVERED, COUNT):
            r.ranges = [RANGE.unpack_from(payload, i) for i in range(0, length, RANGE.size)]
        out.append(r)
        pos = r.end
    assert pos == len(data)
    return out


def _queue_dir(data: Path, name: str) -> Path:
    for d in (data / "queues").iterdir():
        if json.loads((d / "QUEUE").read_text())["name"] == name:
            return d
    raise AssertionError(f"no directory for queue {name}")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Pristine:
    """A broker process writes, then stops cleanly: exchange ``shop`` bound to queue
    ``orders`` (every third message of the first 180 is 300 KB, so there are four segments),
    queue ``audit`` (five messages) and a last-declared exchange ``extra``. The first 60
    messages of ``orders`` are fetched: every 4th acked, every 4th+1 rejected with requeue,
    the rest left unacked (they come back redelivered); then 20 more are published."""
    data = tmp_path_factory.mktemp("pristine") / "data"
    proc, port = serve(data)
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("shop", "direct", durable=True)
        ch.queue_declare(QUEUE, durable=True)
        ch.queue_bind(QUEUE, "shop", "order")
        ch.queue_declare(OTHER, durable=True)
        ch.exchange_declare("extra", "fanout", durable=True)
        persistent = pika.BasicProperties(delivery_mode=2)
        for n in range(200):
            ch.basic_publish("shop", "order", body_of(n), persistent)
        for n in range(1000, 1005):
            ch.basic_publish("", OTHER, body_of(n), persistent)
        fetched = []
        for _ in range(60):
            method, _props, body = ch.basic_get(QUEUE)
            assert method is not None
            fetched.append((method.delivery_tag, int(body[3:body.index(b";")])))
        for tag, n in fetched:
            if n % 4 == 0:
                ch.basic_ack(tag)
            elif n % 4 == 1:
                ch.basic_reject(tag, requeue=True)
        for n in range(200, 220):
            ch.basic_publish("shop", "order", body_of(n), persistent)  # after the acks
        ch.queue_declare(QUEUE, passive=True)  # a round trip: the acks are processed
        conn.close()  # the unacked ones go back to the queue, marked delivered
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop commits what is left
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        proc.stderr.close()
    qdir = _queue_dir(data, QUEUE)
    segments = sorted(p.name for p in qdir.glob("*.seg"))
    records = [r for name in segments for r in _parse(qdir / name)]
    pristine = Pristine(data, qdir.name, records, segments, set(range(1000, 1005)))
    assert len(segments) >= 3, segments  # the cases below need sealed segments
    return pristine


@pytest.fixture
def copy(pristine, tmp_path) -> Path:
    shutil.copytree(pristine.data, tmp_path / "data")
    return tmp_path / "data"


# -- a broker on the damaged copy --------------------------------------------------------


async def _drain(ch: aio_pika.abc.AbstractChannel, name: str) -> dict[int, bool]:
    queue = await ch.get_queue(name, ensure=True)
    got: dict[int, bool] = {}
    while (msg := await queue.get(no_ack=True, fail=False)) is not None:
        n = int(msg.body[3:msg.body.index(b";")])
        assert msg.body == body_of(n), f"message {n} came back damaged"
        assert n not in got, f"message {n} delivered twice"
        got[n] = bool(msg.redelivered)
    return got


@dataclass
class Served:
    orders: dict[int, bool]  # id -> redelivered
    other: set[int]
    warnings: list[str]
    routed: bool  # a message published to exchange ``shop`` reached ``orders``


def _persistent(n: int) -> aio_pika.Message:
    return aio_pika.Message(body_of(n), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


async def _serve_copy(data: Path, caplog) -> Served:
    """Start a broker on ``data`` and take every message; check that it still works (new
    persistent messages through ``shop``, if it still routes, and to both queues), and
    that the data directory it leaves opens again with no new warning."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="leveret"):
        async with leveret.Broker(port=0, data_dir=data) as broker:
            warnings = [r.getMessage() for r in caplog.records
                        if r.levelno >= logging.WARNING]
            conn = await aio_pika.connect(broker.url)
            async with conn:
                ch = await conn.channel(publisher_confirms=True)
                orders = await _drain(ch, QUEUE)
                other = await _drain(ch, OTHER)
                shop = await ch.get_exchange("shop", ensure=True)
                await shop.publish(_persistent(5000), routing_key="order")
                await ch.default_exchange.publish(_persistent(5001), OTHER)
                after = await _drain(ch, QUEUE)
                assert await _drain(ch, OTHER) == {5001: False}
                await ch.default_exchange.publish(_persistent(5002), QUEUE)  # stays
        caplog.clear()
        async with leveret.Broker(port=0, data_dir=data) as broker:
            # nothing new (a bad definitions record stays in the file, and is skipped again)
            assert {r.getMessage() for r in caplog.records
                    if r.levelno >= logging.WARNING} <= set(warnings)
            conn = await aio_pika.connect(broker.url)
            async with conn:
                ch = await conn.channel()
                assert await _drain(ch, QUEUE) == {5002: False}
                assert await _drain(ch, OTHER) == {}
    return Served(orders, set(other), warnings, routed=after == {5000: False})


def _one_warning(served: Served, pattern: str) -> str:
    assert len(served.warnings) == 1, served.warnings
    assert re.search(pattern, served.warnings[0]), served.warnings[0]
    return served.warnings[0]


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def _flip(path: Path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ 0x5A]))


# -- the cases ---------------------------------------------------------------------------


async def test_the_pristine_copy_comes_back_whole(pristine, copy, caplog) -> None:
    served = await _serve_copy(copy, caplog)
    assert served.warnings == []
    expected = pristine.live()
    assert served.orders == expected
    # what the producing run did, independently of the files
    assert set(expected) == {n for n in range(220) if not (n < 60 and n % 4 == 0)}
    assert {n for n, flag in expected.items() if flag} == {
        n for n in range(60) if n % 4 != 0}
    assert served.other == pristine.other_ids and served.routed


@pytest.mark.parametrize("cut", ["mid-payload", "mid-header", "one-byte-short"])
async def test_a_torn_tail_of_the_newest_segment_costs_only_the_torn_record(
        pristine, copy, caplog, cut) -> None:
    newest = pristine.segments[-1]
    last = pristine.in_segment(newest)[-1]
    size = {"mid-payload": last.pos + 12 + last.length // 2, "mid-header": last.pos + 5,
            "one-byte-short": last.end - 1}[cut]
    _truncate(pristine.seg_path(copy, newest), size)
    served = await _serve_copy(copy, caplog)
    _one_warning(served, rf"queue 'orders' in vhost '/': {newest}: torn or corrupt tail: "
                         rf"{size - last.pos} bytes at position {last.pos} dropped")
    assert served.orders == pristine.live(drop={(newest, last.pos)})
    assert last.id not in served.orders and len(served.orders) == len(pristine.live()) - 1
    assert served.other == pristine.other_ids and served.routed


async def test_a_cut_through_the_middle_of_the_newest_segment_keeps_what_is_before_it(
        pristine, copy, caplog) -> None:
    """Everything after the cut is gone, acks included: acked messages come back (at least
    once), messages written after the cut are lost, and nothing before it."""
    newest = pristine.segments[-1]
    records = [r for r in pristine.records if r.segment == newest]
    acks = [r for r in records if r.rtype == ACK]
    assert acks, "the newest segment should hold the acks"
    cut = acks[-1]
    _truncate(pristine.seg_path(copy, newest), cut.pos + 7)
    served = await _serve_copy(copy, caplog)
    _one_warning(served, rf"{newest}: torn or corrupt tail: 7 bytes at position {cut.pos} "
                         rf"dropped")
    gone = {(newest, r.pos) for r in records if r.pos >= cut.pos}
    expected = pristine.live(drop=gone)
    assert served.orders == expected
    lost = set(pristine.live()) - set(expected)
    assert lost == {r.id for r in records if r.rtype == MSG and r.pos > cut.pos}
    assert set(expected) - set(pristine.live())  # the cut ACK's messages are back
    assert served.other == pristine.other_ids and served.routed


async def test_a_torn_tail_of_a_sealed_segment_costs_only_the_torn_record(
        pristine, copy, caplog) -> None:
    sealed = pristine.segments[1]
    last = pristine.in_segment(sealed)[-1]
    records_after = [r for r in pristine.records if r.segment == sealed and r.pos > last.pos]
    size = last.pos + 12 + last.length // 2
    _truncate(pristine.seg_path(copy, sealed), size)
    served = await _serve_copy(copy, caplog)
    _one_warning(served, rf"{sealed}: torn or corrupt tail: {size - last.pos} bytes at "
                         rf"position {last.pos} dropped")
    drop = {(sealed, last.pos)} | {(sealed, r.pos) for r in records_after}
    assert served.orders == pristine.live(drop=drop)
    assert set(pristine.live()) - set(served.orders) == {last.id}
    assert served.other == pristine.other_ids and served.routed


@pytest.mark.parametrize("where", ["big-body", "small-body", "small-length", "small-crc"])
async def test_a_flipped_byte_in_a_message_record_loses_that_message_only(
        pristine, copy, caplog, where) -> None:
    big = [r for r in pristine.in_segment(pristine.segments[1]) if r.length > BIG]
    small = [r for r in pristine.in_segment(pristine.segments[1]) if r.length < BIG]
    victim = big[len(big) // 2] if where == "big-body" else small[len(small) // 2]
    position = {"big-body": victim.pos + 12 + victim.length // 2,
                "small-body": victim.pos + 12 + victim.length // 2,
                "small-length": victim.pos + 5,  # the u32 length
                "small-crc": victim.pos + 9}[where]
    _flip(pristine.seg_path(copy, victim.segment), position)
    served = await _serve_copy(copy, caplog)
    _one_warning(served, rf"{victim.segment}: bad record at position {victim.pos} "
                         rf"\({victim.end - victim.pos} bytes\) skipped")
    assert served.orders == pristine.live(drop={(victim.segment, victim.pos)})
    assert set(pristine.live()) - set(served.orders) == {victim.id}
    assert served.other == pristine.other_ids and served.routed


async def test_a_flipped_byte_in_an_ack_record_brings_its_messages_back(
        pristine, copy, caplog) -> None:
    ack = next(r for r in pristine.records if r.rtype == ACK)
    _flip(pristine.seg_path(copy, ack.segment), ack.pos + 12 + 3)
    served = await _serve_copy(copy, caplog)
    _one_warning(served, rf"{ack.segment}: bad record at position {ack.pos} "
                         rf"\({ack.end - ack.pos} bytes\) skipped")
    expected = pristine.live(drop={(ack.segment, ack.pos)})
    assert served.orders == expected
    assert set(pristine.live()) < set(expected)  # came back: at least once, none lost
    assert served.other == pristine.other_ids and served.routed


@pytest.mark.parametrize("which", ["first", "middle"])
async def test_a_deleted_segment_loses_its_messages_only(
        pristine, copy, caplog, which) -> None:
    name = pristine.segments[0 if which == "first" else 1]
    pristine.seg_path(copy, name).unlink()
    served = await _serve_copy(copy, caplog)
    first = int(name.split(".")[0])
    upto = int(pristine.segments[pristine.segments.index(name) + 1].split(".")[0]) - 1
    _one_warning(served, rf"segment {name} is missing: messages at offsets {first}\.\.{upto} "
                         rf"are lost")
    gone = {(name, r.pos) for r in pristine.records if r.segment == name}
    expected = pristine.live(drop=gone)
    assert served.orders == expected
    assert set(pristine.live()) - set(expected) == {
        r.id for r in pristine.in_segment(name)} & set(pristine.live())
    assert served.other == pristine.other_ids and served.routed


def _definitions(data: Path) -> list[tuple[int, int, list]]:
    """(position, end, [kind, key, ...]) of each record of the definitions log."""
    raw = (data / "definitions.log").read_bytes()
    out, pos = [], FILE_HEADER
    while pos + 12 <= len(raw):
        _m, _t, _f, length, _c = RECORD.unpack_from(raw, pos)
        out.append((pos, pos + 12 + length, json.loads(raw[pos + 12:pos + 12 + length])))
        pos += 12 + length
    return out


async def test_a_damaged_binding_definition_loses_that_binding_only(
        pristine, copy, caplog) -> None:
    records = _definitions(copy)
    pos, end, _item = next(r for r in records if r[2][0] == "binding")
    _flip(copy / "definitions.log", (pos + end) // 2)
    served = await _serve_copy(copy, caplog)
    _one_warning(served, rf"definitions.log: bad record at position {pos} \({end - pos} "
                         rf"bytes\) skipped")
    assert served.orders == pristine.live()
    assert served.other == pristine.other_ids
    assert not served.routed  # the binding is gone, and only it: "shop" is there


async def test_a_torn_definitions_log_loses_only_the_last_definition(
        pristine, copy, caplog) -> None:
    pos, end, item = _definitions(copy)[-1]
    assert item[:2] == ["exchange", json.dumps(["/", "extra"])]
    _truncate(copy / "definitions.log", end - 3)
    served = await _serve_copy(copy, caplog)
    _one_warning(served, rf"definitions.log: torn or corrupt tail: {end - 3 - pos} bytes at "
                         rf"position {pos} dropped")
    assert served.orders == pristine.live()
    assert served.other == pristine.other_ids and served.routed


async def test_a_deleted_newest_segment_keeps_every_other_record(
        pristine, copy, caplog) -> None:
    """The newest segment holds the newest segment list, so its loss is silent
    (docs/storage.md): its messages are lost, its acks undone, the rest kept."""
    newest = pristine.segments[-1]
    pristine.seg_path(copy, newest).unlink()
    served = await _serve_copy(copy, caplog)
    gone = {(newest, r.pos) for r in pristine.records if r.segment == newest}
    assert served.orders == pristine.live(drop=gone)
    assert served.other == pristine.other_ids and served.routed


async def test_a_deleted_newest_segment_is_reported(pristine, copy, caplog) -> None:
    newest = pristine.segments[-1]
    pristine.seg_path(copy, newest).unlink()
    served = await _serve_copy(copy, caplog)
    _one_warning(served, rf"segment {newest} is missing")


def _damage_queue_definition(data: Path, name: str) -> None:
    pos, end, _item = next(r for r in _definitions(data)
                           if r[2][:2] == ["queue", json.dumps(["/", name])])
    _flip(data / "definitions.log", (pos + end) // 2)


async def test_a_damaged_queue_definition_keeps_that_queues_messages(
        pristine, copy, caplog) -> None:
    """The queue's definition is lost (logged), but not its messages: its log stays on
    disk, and declaring the queue again brings them back."""
    _damage_queue_definition(copy, OTHER)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leveret"):
        async with leveret.Broker(port=0, data_dir=copy) as broker:
            assert "definitions.log: bad record at position" in caplog.text
            conn = await aio_pika.connect(broker.url)
            async with conn:
                ch = await conn.channel()
                assert set(await _drain(ch, QUEUE)) == set(pristine.live())
                await ch.declare_queue(OTHER, durable=True)
                assert set(await _drain(ch, OTHER)) == pristine.other_ids


async def test_a_damaged_queue_definition_with_a_binding_does_not_stop_the_broker(
        pristine, copy, caplog) -> None:
    _damage_queue_definition(copy, QUEUE)
    async with leveret.Broker(port=0, data_dir=copy) as broker:
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel()
            assert set(await _drain(ch, OTHER)) == pristine.other_ids
