"""Content properties and field tables: every property and every field value type round-trips,
byte for byte over a raw socket and value for value through the client libraries."""

from __future__ import annotations

import datetime
import decimal

import aiormq
import amqp
import pika
import pytest
from pamqp import commands as C

from ._raw import Typed, encode_properties, encode_table, get_raw, publish_frames
from ._util import declare_temp_queue

T = Typed

ALL_PROPERTIES = {
    "content_type": "application/json",
    "content_encoding": "gzip",
    "headers": {"h": "v"},
    "delivery_mode": 2,
    "priority": 7,
    "correlation_id": "corr-1",
    "reply_to": "reply-queue",
    "expiration": "60000",
    "message_id": "msg-1",
    "timestamp": 1700000000,
    "type": "order.created",
    "user_id": "guest",
    "app_id": "leveret-tests",
    "cluster_id": "cluster-1",
}

EVERY_FIELD_TYPE = {
    # integers of every width, at their limits
    "b-min": T("b", -128),
    "b-max": T("b", 127),
    "B-max": T("B", 255),
    "s-min": T("s", -32768),
    "s-max": T("s", 32767),
    "u-max": T("u", 65535),
    "I-min": T("I", -(2**31)),
    "I-max": T("I", 2**31 - 1),
    "i-max": T("i", 2**32 - 1),
    "l-min": T("l", -(2**63)),
    "l-max": T("l", 2**63 - 1),
    "L-max": T("L", 2**64 - 1),
    # floats and decimals
    "f": T("f", 1.5),
    "d": T("d", -2.25),
    "d-tiny": T("d", 5e-324),
    "D": T("D", decimal.Decimal("-12.345")),
    "D-int": T("D", decimal.Decimal(42)),
    # strings, bytes, booleans, timestamps, void
    "S": "héllo wörld",
    "S-empty": "",
    "x": b"\x00\x01\xfe\xff",
    "x-empty": b"",
    "t-true": True,
    "t-false": False,
    "T": T("T", 1700000000),
    "V": None,
    # nesting
    "F": {"nested": {"deep": [1, "two", {"three": T("b", 3)}]}},
    "F-empty": {},
    "A": [T("b", 1), T("l", 2), "s", None, True, 1.25, [], {}, [[1]]],
    "A-empty": [],
}


def _raw_roundtrip(r, q, property_bytes, body=b"body"):
    r.send_bytes(publish_frames(1, "", q, property_bytes, body))
    got = get_raw(r, 1, q)
    assert got is not None
    header_payload, bodies = got
    assert header_payload[:4] == b"\x00\x3c\x00\x00"  # class 60, weight 0
    assert int.from_bytes(header_payload[4:12], "big") == len(body)
    assert b"".join(bodies) == body
    return header_payload[12:]


@pytest.fixture
def raw_queue(raw):
    r = raw()
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    return r, q


def test_every_property_byte_exact(raw_queue):
    r, q = raw_queue
    props = encode_properties(ALL_PROPERTIES)
    assert _raw_roundtrip(r, q, props) == props


@pytest.mark.parametrize("name", [p for p in ALL_PROPERTIES])
def test_each_property_alone_byte_exact(raw_queue, name):
    r, q = raw_queue
    props = encode_properties({name: ALL_PROPERTIES[name]})
    assert _raw_roundtrip(r, q, props) == props


def test_no_properties(raw_queue):
    r, q = raw_queue
    assert _raw_roundtrip(r, q, b"\x00\x00") == b"\x00\x00"


def test_every_field_type_byte_exact(raw_queue):
    r, q = raw_queue
    props = encode_properties({"headers": EVERY_FIELD_TYPE, "message_id": "m"})
    assert _raw_roundtrip(r, q, props) == props


@pytest.mark.parametrize("key", list(EVERY_FIELD_TYPE))
def test_each_field_type_byte_exact(raw_queue, key):
    r, q = raw_queue
    props = encode_properties({"headers": {key: EVERY_FIELD_TYPE[key]}})
    assert _raw_roundtrip(r, q, props) == props


def test_big_headers_table(raw_queue):
    r, q = raw_queue
    headers = {f"key-{i}": "v" * 200 for i in range(300)}  # ~65 KB of headers
    props = encode_properties({"headers": headers})
    assert _raw_roundtrip(r, q, props) == props


def test_properties_delivered_to_consumers_unchanged(raw_queue):
    r, q = raw_queue
    props = encode_properties({**ALL_PROPERTIES, "headers": EVERY_FIELD_TYPE})
    from ._raw import recv_raw_frame

    r.rpc(C.Basic.Consume(queue=q, consumer_tag="c", no_ack=True), C.Basic.ConsumeOk, 1)
    r.send_bytes(publish_frames(1, "", q, props, b"consumed"))
    deliver = recv_raw_frame(r)
    assert deliver.payload[:4] == b"\x00\x3c\x00\x3c"
    content_header = recv_raw_frame(r)
    assert content_header.payload[12:] == props
    assert recv_raw_frame(r).payload == b"consumed"


@pytest.mark.parametrize("tag", [b"U", b"c", b"Z"])
def test_unknown_field_type_in_headers(raw_queue, tag):
    """An undecodable headers table is an internal error in RabbitMQ: the connection goes."""
    r, q = raw_queue
    table = b"\x01k" + tag + b"\x00\x01"
    props = (1 << 13).to_bytes(2, "big") + len(table).to_bytes(4, "big") + table
    r.send_bytes(publish_frames(1, "", q, props, b"x"))
    r.send(C.Basic.Get(queue=q, no_ack=True), 1)
    close = r.expect_connection_close()
    assert close.reply_code == 541
    assert close.reply_text.startswith("INTERNAL_ERROR")


# -- user_id ---------------------------------------------------------------------------------------


def test_user_id_matching_the_login_is_delivered(channel):
    q = declare_temp_queue(channel)
    channel.basic_publish("", q, b"m", pika.BasicProperties(user_id="guest"))
    assert channel.basic_get(q, auto_ack=True)[1].user_id == "guest"


def test_user_id_not_matching_the_login(channel):
    q = declare_temp_queue(channel)
    channel.basic_publish("", q, b"m", pika.BasicProperties(user_id="mallory"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"
    )


# -- through the clients ---------------------------------------------------------------------------


def test_pika_all_properties(channel):
    q = declare_temp_queue(channel)
    headers = {
        "str": "text",
        "int": 42,
        "neg": -7,
        "big": 2**40,
        "bool": True,
        "false": False,
        "none": None,
        "bytes": b"\x00\xff",
        "decimal": decimal.Decimal("3.14"),
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "nested": {"a": {"b": [1, "x", {"c": None}]}},
        "list": [1, "two", [3]],
        "empty": {},
        "empty-list": [],
        "unicode": "ünïcödé ✓",
    }
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=9,
        correlation_id="c",
        reply_to="r",
        expiration="100000",
        message_id="m",
        timestamp=1700000000,
        type="t",
        user_id="guest",
        app_id="a",
        cluster_id="cl",
    )
    channel.basic_publish("", q, b"{}", props)
    _m, got, body = channel.basic_get(q, auto_ack=True)
    assert body == b"{}"
    for name in (
        "content_type",
        "content_encoding",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
        "cluster_id",
    ):
        assert getattr(got, name) == getattr(props, name), name
    assert got.headers["str"] in ("text", b"text")
    assert got.headers["int"] == 42 and got.headers["neg"] == -7 and got.headers["big"] == 2**40
    assert got.headers["bool"] is True and got.headers["false"] is False
    assert got.headers["none"] is None
    assert got.headers["bytes"] == b"\x00\xff"
    assert got.headers["decimal"] == decimal.Decimal("3.14")
    assert got.headers["when"].replace(tzinfo=None) == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert got.headers["nested"] == {"a": {"b": [1, "x", {"c": None}]}}
    assert got.headers["list"] == [1, "two", [3]]
    assert got.headers["empty"] == {} and got.headers["empty-list"] == []
    assert got.headers["unicode"] == "ünïcödé ✓"


def test_py_amqp_field_types(amqp_params):
    c = amqp.Connection(
        f"{amqp_params.host}:{amqp_params.port}",
        userid=amqp_params.user,
        password=amqp_params.password,
        virtual_host=amqp_params.vhost,
    )
    c.connect()
    try:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).queue
        headers = {
            "float": 1.25,
            "int": 7,
            "long": 2**50,
            "neg": -3,
            "bool": True,
            "none": None,
            "str": "s",
            "decimal": decimal.Decimal("1.5"),
            "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
            "table": {"x": [1, 2.5, "three"]},
            "array": [True, None, {"k": "v"}],
        }
        msg = amqp.Message(
            b"py-amqp",
            content_type="text/plain",
            application_headers=headers,
            delivery_mode=2,
            priority=3,
            correlation_id="c",
            reply_to="r",
            expiration="5000",
            message_id="m",
            timestamp=1700000000,
            type="t",
            user_id="guest",
            app_id="a",
        )
        ch.basic_publish(msg, exchange="", routing_key=q)
        got = ch.basic_get(q, no_ack=True)
        assert got.body == b"py-amqp"
        assert got.properties["application_headers"] == headers
        for name in (
            "content_type",
            "delivery_mode",
            "priority",
            "correlation_id",
            "reply_to",
            "expiration",
            "message_id",
            "type",
            "user_id",
            "app_id",
        ):
            assert got.properties[name] == msg.properties[name], name
    finally:
        c.close()


async def test_aiormq_field_types(amqp_url):
    conn = await aiormq.connect(amqp_url)
    try:
        ch = await conn.channel()
        q = (await ch.queue_declare("", exclusive=True)).queue
        headers = {
            "float": 2.5,
            "int": 1,
            "long": -(2**40),
            "bool": False,
            "none": None,
            "str": "s",
            "bytes": bytearray(b"\x01\x02"),
            "decimal": decimal.Decimal("-0.5"),
            "when": datetime.datetime(2023, 3, 4, 5, 6, 7, tzinfo=datetime.UTC),
            "table": {"deep": {"deeper": [1, [2, [3]]]}},
            "array": ["a", 1, 1.5, None],
        }
        props = aiormq.spec.Basic.Properties(
            content_type="application/octet-stream",
            headers=headers,
            delivery_mode=1,
            priority=0,
            correlation_id="c",
            message_id="m",
            app_id="aiormq",
            timestamp=datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC),
        )
        await ch.basic_publish(b"aiormq", routing_key=q, properties=props)
        got = await ch.basic_get(q, no_ack=True)
        assert got.body == b"aiormq"
        h = got.header.properties.headers
        assert h["float"] == 2.5 and h["int"] == 1 and h["long"] == -(2**40)
        assert h["bool"] is False and h["none"] is None
        assert h["str"] in ("s", b"s")
        assert h["bytes"] == b"\x01\x02"
        assert h["decimal"] == decimal.Decimal("-0.5")
        assert h["when"].replace(tzinfo=datetime.UTC) == headers["when"]
        assert h["table"] == {"deep": {"deeper": [1, [2, [3]]]}}
        assert h["array"] == ["a", 1, 1.5, None]
        p = got.header.properties
        assert (
            p.content_type,
            p.delivery_mode,
            p.priority,
            p.correlation_id,
            p.message_id,
            p.app_id,
        ) == ("application/octet-stream", 1, 0, "c", "m", "aiormq")
    finally:
        await conn.close()


def test_header_table_keys_keep_their_order_and_case(raw_queue):
    r, q = raw_queue
    headers = {"Zeta": 1, "alpha": 2, "ALPHA": 3, "mid-dle": 4}
    props = encode_properties({"headers": headers})
    assert _raw_roundtrip(r, q, props) == props
    assert encode_table(headers).startswith(b"\x00\x00\x00")  # sanity of the encoder
