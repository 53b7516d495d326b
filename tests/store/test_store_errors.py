"""The store's errors are part of leveret's one exception tree (leveret/errors.py).

``StoreError`` sits under ``LeveretError`` but not under ``AMQPError``: the peer did nothing
wrong, so a store failure that reaches a connection still closes it with 541
INTERNAL_ERROR, as before. Every import path of the store errors names the same classes,
so each ``except StoreError`` in the code keeps catching what the store raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import leveret.store
import leveret.store.base
from leveret import errors
from leveret.amqp import frames, spec
from leveret.amqp.frames import FrameBuffer
from leveret.broker.connection import RUNNING, ServerConnection
from leveret.broker.node import Node
from leveret.store import DiskStore, MemoryStore
from leveret.store.memory import MemoryQueueLog

STORE_ERRORS = ("StoreError", "StoreLocked", "StoreClosed", "CorruptRecord")


@pytest.mark.parametrize("name", STORE_ERRORS)
def test_store_errors_are_leveret_errors_but_not_amqp_errors(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, errors.StoreError) and issubclass(cls, errors.LeveretError)
    assert not issubclass(cls, errors.AMQPError)
    assert getattr(leveret.store, name) is cls
    assert getattr(leveret.store.base, name) is cls
    assert name in leveret.store.__all__


def test_the_tree_drawn_in_errors_names_the_store_errors() -> None:
    doc = errors.__doc__ or ""
    for name in STORE_ERRORS:
        assert f"+-- {name}" in doc


def test_except_store_error_catches_what_the_disk_store_raises(tmp_path: Path) -> None:
    store = DiskStore(tmp_path / "data")
    qlog = store.open_queue("/", "q")
    qlog.delete()
    with pytest.raises(leveret.store.StoreError):
        qlog.append(b"x")
    with pytest.raises(errors.StoreLocked):
        DiskStore(tmp_path / "data")  # the first store still holds the lock
    store.close()
    with pytest.raises(leveret.store.base.StoreError):
        store.open_queue("/", "q")


class _FailingLog(MemoryQueueLog):
    def append(self, payload: Any, persistent: bool = True) -> int:
        raise errors.StoreError("cannot write: No space left on device")


class _FailingStore(MemoryStore):
    def open_queue(self, vhost: str, name: str, transient: bool = False) -> MemoryQueueLog:
        return _FailingLog(self, vhost, name, transient)


def _methods(conn: ServerConnection) -> list[spec.Method]:
    inbox = FrameBuffer(1 << 20)
    inbox.feed(conn.take_output())
    conn.output_flushed()
    out = []
    while (frame := inbox.next_frame()) is not None:
        ftype, _channel, payload = frame
        if ftype == frames.METHOD:
            cls = spec.METHODS[int.from_bytes(payload[:4], "big")]
            out.append(cls.decode(payload, 4))
    return out


def test_a_store_error_reaching_a_connection_closes_it_with_541() -> None:
    node = Node()
    node.attach_store(_FailingStore())
    conn = ServerConnection(node, peer=("127.0.0.1", 40000))
    conn.receive_data(frames.PROTOCOL_HEADER + b"".join(frames.encode_method(ch, m) for ch, m in (
        (0, spec.ConnectionStartOk(mechanism="PLAIN", response=b"\x00guest\x00guest")),
        (0, spec.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=0)),
        (0, spec.ConnectionOpen(virtual_host="/")),
        (1, spec.ChannelOpen()),
        (1, spec.QueueDeclare(queue="q", durable=True)),
    )))
    assert conn.state == RUNNING
    _methods(conn)
    persistent = spec.Properties(delivery_mode=2).encode()
    conn.receive_data(frames.encode_method(1, spec.BasicPublish(routing_key="q")) +
                      frames.encode_content(1, 60, persistent, b"body", 131072))
    closes = [m for m in _methods(conn) if isinstance(m, spec.ConnectionClose)]
    assert [(c.reply_code, c.reply_text) for c in closes] == [
        (541, "INTERNAL_ERROR - cannot write: No space left on device")]
