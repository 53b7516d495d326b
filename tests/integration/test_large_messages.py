"""Message bodies from 0 bytes to the 128 MiB maximum, how they are split into frames, and the
content-framing errors."""

from __future__ import annotations

import hashlib
import os
import time

import pika
import pytest
from pamqp import commands as C

from ._raw import get_raw, publish_frames, raw_frame, recv_raw_frame, shortstr
from ._util import declare_temp_queue

FRAME_MAX = 131072  # what pika negotiates by default (and RabbitMQ proposes)
MiB = 1024 * 1024
MAX_MESSAGE_SIZE = 128 * MiB  # RabbitMQ's default max_message_size


def _body(size: int) -> bytes:
    # random head and tail so that misplaced frames show; cheap zeros in between
    if size <= 64:
        return os.urandom(size)
    return os.urandom(32) + bytes(size - 64) + os.urandom(32)


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        FRAME_MAX - 9,
        FRAME_MAX - 8,
        FRAME_MAX - 7,
        FRAME_MAX,
        FRAME_MAX + 1,
        2 * (FRAME_MAX - 8),
        MiB,
    ],
    ids=lambda s: f"{s}B",
)
def test_body_sizes_pika(channel, size):
    q = declare_temp_queue(channel)
    body = _body(size)
    channel.basic_publish("", q, body)
    method, _props, got = channel.basic_get(q, auto_ack=True)
    assert method is not None
    assert got == body


def test_16mib_pika_consumer(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    body = _body(16 * MiB)
    ch.basic_publish("", q, body)
    got = []
    ch.basic_consume(q, lambda _c, _m, _p, b: got.append(b), auto_ack=True)
    deadline = time.monotonic() + 30
    while not got:
        assert time.monotonic() < deadline
        conn.process_data_events(time_limit=0.1)
    assert got[0] == body


def test_16mib_raw(raw):
    r = raw()
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    body = _body(16 * MiB)
    r.send_bytes(publish_frames(1, "", q, b"\x00\x00", body))
    got = get_raw(r, 1, q)
    assert got is not None
    assert b"".join(got[1]) == body


def test_max_message_size_is_accepted(raw):
    """Exactly 128 MiB is accepted (and confirmed) and comes back intact."""
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    body = _body(MAX_MESSAGE_SIZE)
    digest = hashlib.sha256(body).digest()
    r.send_bytes(publish_frames(1, "", q, b"\x00\x00", body))
    del body
    ack = r.expect(C.Basic.Ack, 1, timeout=60)
    assert ack.delivery_tag == 1
    got = get_raw(r, 1, q)
    assert got is not None
    payload = b"".join(got[1])
    assert len(payload) == MAX_MESSAGE_SIZE
    assert hashlib.sha256(payload).digest() == digest


def test_over_max_message_size_is_refused(raw):
    r = raw()
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    size = MAX_MESSAGE_SIZE + 1
    r.send_bytes(publish_frames(1, "", q, b"\x00\x00", bytes(size)))
    close = r.expect_channel_close(1, timeout=60)
    assert (close.reply_code, close.class_id, close.method_id) == (406, 60, 40)
    assert close.reply_text == (
        f"PRECONDITION_FAILED - message size {size} is larger than configured max size "
        f"{MAX_MESSAGE_SIZE}"
    )


# -- frames ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("frame_max", [4096, 8192, FRAME_MAX])
def test_server_splits_bodies_by_the_negotiated_frame_max(raw, frame_max):
    r = raw(frame_max=frame_max)
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    body = _body(3 * frame_max + 100)
    r.send_bytes(publish_frames(1, "", q, b"\x00\x00", body, frame_max=frame_max))
    got = get_raw(r, 1, q)
    assert got is not None
    chunks = got[1]
    assert b"".join(chunks) == body
    assert [len(c) for c in chunks] == [frame_max - 8] * 3 + [100 + 3 * 8]


def test_empty_body_has_no_body_frame(raw):
    r = raw()
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.send_bytes(publish_frames(1, "", q, b"\x00\x00", b""))
    r.send(C.Basic.Get(queue=q, no_ack=True), 1)
    assert recv_raw_frame(r).payload[:4] == b"\x00\x3c\x00\x47"  # get-ok
    content_header = recv_raw_frame(r)
    assert content_header.type == 2
    assert int.from_bytes(content_header.payload[4:12], "big") == 0
    r.send(C.Basic.Get(queue=q, no_ack=True), 1)
    assert recv_raw_frame(r).payload[:4] == b"\x00\x3c\x00\x48"  # get-empty, no body frame between


def test_body_in_tiny_frames_is_reassembled(raw):
    r = raw()
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    body = os.urandom(1000)
    method = b"\x00\x3c\x00\x28\x00\x00" + shortstr("") + shortstr(q) + b"\x00"
    header = b"\x00\x3c\x00\x00" + len(body).to_bytes(8, "big") + b"\x00\x00"
    frames = [raw_frame(1, 1, method), raw_frame(2, 1, header)]
    pos = 0
    for n in (1, 7, 100, 1, 500):
        frames.append(raw_frame(3, 1, body[pos : pos + n]))
        pos += n
    frames.append(raw_frame(3, 1, body[pos:]))
    r.send_bytes(b"".join(frames))
    got = get_raw(r, 1, q)
    assert got is not None and b"".join(got[1]) == body


def test_interleaved_content_on_two_channels(raw):
    r = raw()
    r.open_channel(1)
    r.open_channel(2)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    a, b = b"A" * 300, b"B" * 300
    frames = []
    for ch in (1, 2):
        frames.append(
            raw_frame(1, ch, b"\x00\x3c\x00\x28\x00\x00" + shortstr("") + shortstr(q) + b"\x00")
        )
    for ch in (1, 2):
        frames.append(
            raw_frame(2, ch, b"\x00\x3c\x00\x00" + (300).to_bytes(8, "big") + b"\x00\x00")
        )
    for i in range(0, 300, 100):
        frames.append(raw_frame(3, 2, b[i : i + 100]))
        frames.append(raw_frame(3, 1, a[i : i + 100]))
    r.send_bytes(b"".join(frames))
    bodies = {b"".join(get_raw(r, 1, q)[1]), b"".join(get_raw(r, 1, q)[1])}
    assert bodies == {a, b}


# -- content framing errors ------------------------------------------------------------------------

_PUBLISH = b"\x00\x3c\x00\x28\x00\x00" + shortstr("") + shortstr("it.nowhere") + b"\x00"


def _header(size: int, class_id: int = 60) -> bytes:
    return class_id.to_bytes(2, "big") + b"\x00\x00" + size.to_bytes(8, "big") + b"\x00\x00"


@pytest.mark.parametrize(
    ("frames", "method", "text"),
    [
        pytest.param(
            [raw_frame(1, 1, _PUBLISH), raw_frame(1, 1, _PUBLISH)],
            (60, 40),
            "UNEXPECTED_FRAME - expected content header for class 60, "
            "got non content header frame instead",
            id="method-instead-of-header",
        ),
        pytest.param(
            [raw_frame(1, 1, _PUBLISH), raw_frame(2, 1, _header(5, class_id=50))],
            (60, 40),
            "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
            id="header-of-wrong-class",
        ),
        pytest.param(
            [
                raw_frame(1, 1, _PUBLISH),
                raw_frame(2, 1, _header(5)),
                raw_frame(3, 1, b"01"),
                raw_frame(1, 1, b"\x00\x32\x00\x0a\x00\x00\x00\x00\x00\x00\x00"),
            ],
            (60, 40),
            "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
            id="method-before-body-complete",
        ),
        pytest.param(
            [raw_frame(1, 1, _PUBLISH), raw_frame(2, 1, _header(0)), raw_frame(3, 1, b"")],
            (0, 0),
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
            id="body-frame-after-empty-content",
        ),
        pytest.param(
            [raw_frame(1, 1, _PUBLISH), raw_frame(2, 2, _header(5))],
            (0, 0),
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
            id="header-on-another-channel",
        ),
    ],
)
def test_content_framing_errors(raw, frames, method, text):
    r = raw()
    r.open_channel(1)
    r.open_channel(2)
    r.send_bytes(b"".join(frames))
    close = r.expect_connection_close()
    assert close.reply_code == 505
    assert (close.class_id, close.method_id) == method
    assert close.reply_text == text


def test_pika_large_message_with_small_frame_max(connect):
    conn = connect(frame_max=4096)
    ch = conn.channel()
    q = declare_temp_queue(ch)
    body = _body(200_000)
    ch.basic_publish("", q, body, pika.BasicProperties(headers={"k": "v" * 3000}))
    _m, props, got = ch.basic_get(q, auto_ack=True)
    assert got == body
    assert props.headers == {"k": "v" * 3000}
