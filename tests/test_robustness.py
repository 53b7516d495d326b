"""Nothing a client sends can take the broker down or stall other connections.

Random and mutated frames go to a live broker over TCP after a valid handshake; after each
one, a well-behaved client on another connection still gets its message through.
"""

from __future__ import annotations

import socket
import struct
import threading

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leveret.amqp import frames, spec
from leveret.runtime.threaded import BrokerThread

HANDSHAKE = frames.PROTOCOL_HEADER + b"".join(frames.encode_method(0, m) for m in (
    spec.ConnectionStartOk(client_properties={}, mechanism="PLAIN",
                           response=b"\x00guest\x00guest"),
    spec.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=0),
    spec.ConnectionOpen(virtual_host="/"),
)) + frames.encode_method(1, spec.ChannelOpen())

VALID = [
    frames.encode_method(1, spec.QueueDeclare(queue="fuzz", arguments={"x-max-length": 10})),
    frames.encode_method(1, spec.BasicPublish(routing_key="fuzz")) +
    frames.encode_content(1, 60, spec.Properties(headers={"a": [1, {"b": 2.5}]}).encode(),
                          b"body", 131072),
    frames.encode_method(1, spec.BasicConsume(queue="fuzz")),
    frames.encode_method(1, spec.BasicAck(delivery_tag=1, multiple=True)),
    frames.encode_method(1, spec.ExchangeDeclare(exchange="fx", type="headers")),
    frames.encode_method(1, spec.QueueBind(queue="fuzz", exchange="fx",
                                           arguments={"x-match": "any", "k": None})),
]


@pytest.fixture(scope="module")
def broker():
    with BrokerThread() as b:
        yield b


def blast(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(HANDSHAKE + payload)
        s.settimeout(0.05)
        try:
            while s.recv(65536):
                pass
        except (TimeoutError, ConnectionResetError):
            pass


def assert_broker_healthy(url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"still here")
    _, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"still here"
    conn.close()


def _mutate(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for pos, value in flips:
        buf[pos % len(buf)] = value
    return bytes(buf)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(VALID), min_size=1, max_size=5),
       st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_mutated_frames(broker, valid: list[bytes], flips: list[tuple[int, int]]) -> None:
    blast(broker.port, _mutate(b"".join(valid), flips))
    assert_broker_healthy(broker.url)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 9), st.integers(0, 3), st.binary(max_size=64))
def test_random_frames(broker, ftype: int, channel: int, payload: bytes) -> None:
    frame = struct.pack(">BHI", ftype, channel, len(payload)) + payload + b"\xce"
    blast(broker.port, frame)
    assert_broker_healthy(broker.url)


def test_slow_reader_does_not_stall_others(broker) -> None:
    """A consumer that never reads fills its socket; other connections keep working."""
    stop = threading.Event()
    hog = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = hog.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q, lambda *a: stop.wait(), auto_ack=True)
    for _ in range(2000):
        ch.basic_publish("", q, b"y" * 4096)
    assert_broker_healthy(broker.url)
    stop.set()
    hog.close()
