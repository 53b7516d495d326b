"""leveret.amqp.spec: the generated method classes and the basic content properties.

``encode()`` gives the method payload including the class/method id prefix; ``decode(buf,
off)`` starts just after that prefix. pamqp is the oracle in both directions: what we encode
pamqp decodes to the same values, and what pamqp marshals we decode to the same values.
pamqp's argument validation (ticket must be 0, name patterns, ...) is switched off for the
oracle: the codec does not validate, the broker does.
"""

from __future__ import annotations

import datetime
import json
import runpy
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from amqp_strategies import (
    for_amqp_type,
    tables_for_pamqp_decode,
    tables_for_pamqp_encode,
    utf8_text,
)
from hypothesis import given
from hypothesis import strategies as st
from pamqp import commands as pcommands
from pamqp import frame as pframe
from pamqp import header as pheader

from leveret.amqp import fields, frames, spec
from leveret.errors import FrameError

# pamqp warns on every basic.recover-async it builds (deprecated in 0-9-1)
pytestmark = pytest.mark.filterwarnings("ignore:This command is deprecated:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
SPEC_JSON = ROOT / "tools" / "spec" / "amqp-rabbitmq-0.9.1.json"  # vendored: see its README

ALL_METHODS = sorted(spec.METHODS.values(), key=lambda c: c.INDEX)
IN_PAMQP = [c for c in ALL_METHODS if c.INDEX in pcommands.INDEX_MAPPING]
NOT_IN_PAMQP = [c for c in ALL_METHODS if c.INDEX not in pcommands.INDEX_MAPPING]
WITH_FIELDS = [c for c in ALL_METHODS if c.__slots__]


def method_id(cls: type[spec.Method]) -> str:
    return cls.NAME


def values_of(m: Any, names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(m, n) for n in names}


# ------------------------------------------------------------------ the class table

def test_method_table_matches_pamqp():
    """Same methods (pamqp lacks only access.request/-ok), same ids, argument order, types."""
    assert {c.NAME for c in NOT_IN_PAMQP} == {"access.request", "access.request-ok"}
    for cls in IN_PAMQP:
        theirs = pcommands.INDEX_MAPPING[cls.INDEX]
        assert (theirs.index >> 16, theirs.index & 0xFFFF) == (cls.CLASS_ID, cls.METHOD_ID)
        assert len(cls.__slots__) == len(theirs.__slots__), cls.NAME
        renamed = {"exchange_type": "type"}
        assert [renamed.get(n, n) for n in theirs.__slots__] == list(cls.__slots__), cls.NAME
        assert theirs.synchronous == cls.SYNCHRONOUS, cls.NAME


def test_lookup_tables():
    for cls in ALL_METHODS:
        assert spec.METHODS[cls.INDEX] is cls
        assert spec.BY_NAME[cls.NAME] is cls
        assert cls.INDEX == (cls.CLASS_ID << 16) | cls.METHOD_ID
        assert cls().encode()[:4] == struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID)


def test_the_committed_module_is_what_the_generator_writes(tmp_path):
    """spec.py is generated: regenerate it from the vendored spec and compare byte for byte,
    so a hand edit, or a generator change without a regeneration, fails here."""
    out = tmp_path / "spec.py"
    subprocess.run([sys.executable, str(ROOT / "tools" / "codegen.py"), str(SPEC_JSON), str(out)],
                   check=True, capture_output=True)
    committed = ROOT / "src" / "leveret" / "amqp" / "spec.py"
    assert out.read_bytes() == committed.read_bytes(), (
        "src/leveret/amqp/spec.py differs from what tools/codegen.py writes: run `make codegen`")


def test_the_generator_reads_the_vendored_spec_by_default():
    """A fresh clone regenerates: the default input lies inside the repository."""
    codegen = runpy.run_path(str(ROOT / "tools" / "codegen.py"))  # __name__ is not __main__
    assert codegen["DEFAULT_SPEC"] == SPEC_JSON and SPEC_JSON.is_file()
    assert codegen["DEFAULT_OUT"] == ROOT / "src" / "leveret" / "amqp" / "spec.py"


def test_frame_constants_come_from_the_spec():
    """One source of truth: frames.py names the spec's constants, it does not repeat them."""
    assert (frames.METHOD, frames.HEADER, frames.BODY, frames.HEARTBEAT) == (
        spec.FRAME_METHOD, spec.FRAME_HEADER, spec.FRAME_BODY, spec.FRAME_HEARTBEAT)
    assert (frames.FRAME_END, frames.FRAME_MIN_SIZE) == (spec.FRAME_END, spec.FRAME_MIN_SIZE)
    constants = {c["name"]: c["value"] for c in json.loads(SPEC_JSON.read_text())["constants"]}
    assert constants["FRAME-END"] == frames.FRAME_END == frames.FRAME_END_BYTE[0]


def test_every_method_of_the_spec_json_is_generated():
    data = json.loads(SPEC_JSON.read_text())
    seen = set()
    for c in data["classes"]:
        for m in c["methods"]:
            cls = spec.METHODS[(c["id"] << 16) | m["id"]]
            assert f"{c['name']}.{m['name']}" == cls.NAME
            assert [a["name"].replace("-", "_") for a in m["arguments"]] == [
                s.rstrip("_") if s == "global_" else s for s in cls.__slots__]
            assert bool(m.get("content")) == cls.CONTENT
            seen.add(cls)
    assert seen == set(ALL_METHODS)


def test_content_methods():
    assert {c.NAME for c in ALL_METHODS if c.CONTENT} == {
        "basic.publish", "basic.return", "basic.deliver", "basic.get-ok"}


def test_rabbitmq_quirk_exchange_unbind_ok_is_method_51():
    assert spec.ExchangeUnbindOk.METHOD_ID == 51


# ------------------------------------------------------------------ golden bytes

GOLDEN = [
    pytest.param(
        spec.ConnectionStartOk(client_properties={"product": "x"}, mechanism="PLAIN",
                               response=b"\0guest\0guest", locale="en_US"),
        b"\x00\x0a\x00\x0b"
        b"\x00\x00\x00\x0e\x07productS\x00\x00\x00\x01x"
        b"\x05PLAIN"
        b"\x00\x00\x00\x0c\x00guest\x00guest"
        b"\x05en_US",
        id="connection.start-ok"),
    pytest.param(
        spec.ConnectionTune(channel_max=2047, frame_max=131072, heartbeat=60),
        b"\x00\x0a\x00\x1e\x07\xff\x00\x02\x00\x00\x00\x3c",
        id="connection.tune"),
    pytest.param(
        spec.ConnectionClose(reply_code=320, reply_text="CONNECTION_FORCED - bye", class_id=0,
                             method_id=0),
        b"\x00\x0a\x00\x32\x01\x40\x17CONNECTION_FORCED - bye\x00\x00\x00\x00",
        id="connection.close"),
    pytest.param(
        spec.ChannelClose(reply_code=406, reply_text="PRECONDITION_FAILED - x", class_id=50,
                          method_id=10),
        b"\x00\x14\x00\x28\x01\x96\x17PRECONDITION_FAILED - x\x00\x32\x00\x0a",
        id="channel.close"),
    pytest.param(
        spec.QueueDeclare(ticket=0, queue="q1", passive=False, durable=True, exclusive=False,
                          auto_delete=True, nowait=False, arguments={"x-max-length": 10}),
        b"\x00\x32\x00\x0a\x00\x00\x02q1\x0a\x00\x00\x00\x0f\x0cx-max-lengthb\x0a",
        id="queue.declare"),
    pytest.param(
        spec.QueueDeclareOk(queue="amq.gen-1", message_count=3, consumer_count=1),
        b"\x00\x32\x00\x0b\x09amq.gen-1\x00\x00\x00\x03\x00\x00\x00\x01",
        id="queue.declare-ok"),
    pytest.param(
        spec.ExchangeDeclare(exchange="x", type="topic", durable=True, internal=True),
        b"\x00\x28\x00\x0a\x00\x00\x01x\x05topic\x0a\x00\x00\x00\x00",
        id="exchange.declare"),
    pytest.param(
        spec.BasicPublish(exchange="amq.direct", routing_key="rk", mandatory=True),
        b"\x00\x3c\x00\x28\x00\x00\x0aamq.direct\x02rk\x01",
        id="basic.publish"),
    pytest.param(
        spec.BasicDeliver(consumer_tag="ctag", delivery_tag=2**40 + 5, redelivered=True,
                          exchange="", routing_key="q"),
        b"\x00\x3c\x00\x3c\x04ctag\x00\x00\x01\x00\x00\x00\x00\x05\x01\x00\x01q",
        id="basic.deliver"),
    pytest.param(
        spec.BasicGetOk(delivery_tag=1, redelivered=False, exchange="e", routing_key="k",
                        message_count=7),
        b"\x00\x3c\x00\x47\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01e\x01k\x00\x00\x00\x07",
        id="basic.get-ok"),
    pytest.param(
        spec.BasicAck(delivery_tag=7, multiple=True),
        b"\x00\x3c\x00\x50\x00\x00\x00\x00\x00\x00\x00\x07\x01",
        id="basic.ack"),
    pytest.param(
        spec.BasicNack(delivery_tag=1, multiple=False, requeue=True),
        b"\x00\x3c\x00\x78\x00\x00\x00\x00\x00\x00\x00\x01\x02",
        id="basic.nack"),
    pytest.param(
        spec.BasicQos(prefetch_size=0, prefetch_count=10, global_=True),
        b"\x00\x3c\x00\x0a\x00\x00\x00\x00\x00\x0a\x01",
        id="basic.qos"),
    pytest.param(
        spec.BasicConsume(queue="q", consumer_tag="", no_local=False, no_ack=True,
                          exclusive=True, nowait=False, arguments={}),
        b"\x00\x3c\x00\x14\x00\x00\x01q\x00\x06\x00\x00\x00\x00",
        id="basic.consume"),
    pytest.param(
        spec.AccessRequest(realm="/data", exclusive=False, passive=True, active=True,
                           write=False, read=True),
        b"\x00\x1e\x00\x0a\x05/data\x16",
        id="access.request"),
    pytest.param(spec.AccessRequestOk(ticket=1), b"\x00\x1e\x00\x0b\x00\x01",
                 id="access.request-ok"),
    pytest.param(spec.ExchangeUnbindOk(), b"\x00\x28\x00\x33", id="exchange.unbind-ok"),
    pytest.param(spec.TxSelect(), b"\x00\x5a\x00\x0a", id="tx.select"),
    pytest.param(spec.ConfirmSelect(nowait=True), b"\x00\x55\x00\x0a\x01",
                 id="confirm.select"),
]


@pytest.mark.parametrize(("method", "wire"), GOLDEN)
def test_method_golden_bytes(method, wire):
    assert method.encode() == wire
    assert type(method).decode(wire, 4) == method


@pytest.mark.parametrize(("method", "wire"), [p for p in GOLDEN
                                                if p.id not in ("access.request",
                                                                "access.request-ok")])
def test_method_golden_bytes_agree_with_pamqp(method, wire):
    frame = frames.encode_method(3, method)
    assert frame == b"\x01\x00\x03" + struct.pack(">I", len(wire)) + wire + b"\xce"
    consumed, channel, theirs = pframe.unmarshal(frame)
    assert (consumed, channel) == (len(frame), 3)
    assert_same_values(method, theirs)


def test_defaults_follow_the_spec_json():
    m = spec.ExchangeDeclare()
    assert (m.ticket, m.exchange, m.type, m.arguments) == (0, "", "direct", {})
    start = spec.ConnectionStart()
    assert (start.version_major, start.version_minor) == (0, 9)
    assert start.mechanisms == b"PLAIN" and start.locales == b"en_US"
    assert spec.BasicQos().global_ is False


def test_repr_and_equality():
    a = spec.BasicAck(delivery_tag=1)
    assert a == spec.BasicAck(delivery_tag=1)
    assert a != spec.BasicAck(delivery_tag=2)
    assert a != spec.BasicReject(delivery_tag=1)
    assert "basic.ack" in repr(a) and "delivery_tag=1" in repr(a)


# ------------------------------------------------------------------ pamqp oracle

def pamqp_class(cls: type[spec.Method]) -> type:
    """pamqp's class for the method, with its argument validation switched off."""
    theirs = pcommands.INDEX_MAPPING[cls.INDEX]
    return type(theirs.__name__, (theirs,), {"validate": lambda self: None})


def pamqp_type(cls: type[spec.Method], i: int) -> str:
    theirs = pcommands.INDEX_MAPPING[cls.INDEX]
    return theirs.amqp_type(theirs.__slots__[i])


def normalise(value: Any, amqp_type: str) -> Any:
    """pamqp decodes a longstr to str when it is UTF-8; leveret always to bytes."""
    if amqp_type == "longstr" and isinstance(value, str):
        return value.encode()
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def assert_same_values(ours: spec.Method, theirs: Any) -> None:
    cls = type(ours)
    assert theirs.index == cls.INDEX
    their_names = type(theirs).__slots__
    for i, name in enumerate(cls.__slots__):
        t = pamqp_type(cls, i)
        assert normalise(getattr(theirs, their_names[i]), t) == normalise(getattr(ours, name), t), (
            cls.NAME, name)


def method_values(cls: type[spec.Method], tables: st.SearchStrategy[Any],
                  longstr: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        name: for_amqp_type(pamqp_type(cls, i), tables=tables, longstr=longstr)
        for i, name in enumerate(cls.__slots__)})


@pytest.mark.parametrize("cls", IN_PAMQP, ids=method_id)
@given(data=st.data())
def test_our_encoding_decodes_in_pamqp_to_the_same_values(cls, data):
    values = data.draw(method_values(cls, tables_for_pamqp_decode(),
                                     st.binary(max_size=300)))
    ours = cls(**values)
    frame = frames.encode_method(1, ours)
    consumed, channel, theirs = pframe.unmarshal(frame)
    assert (consumed, channel) == (len(frame), 1)
    assert_same_values(ours, theirs)
    assert cls.decode(ours.encode(), 4) == ours


@pytest.mark.parametrize("cls", IN_PAMQP, ids=method_id)
@given(data=st.data())
def test_pamqp_encoding_decodes_in_leveret_to_the_same_values(cls, data):
    values = data.draw(method_values(cls, tables_for_pamqp_encode(), utf8_text(300)))
    theirs_cls = pamqp_class(cls)
    their_names = pcommands.INDEX_MAPPING[cls.INDEX].__slots__
    rename = dict(zip(cls.__slots__, their_names, strict=True))
    theirs = theirs_cls(**{rename[k]: v for k, v in values.items()})
    wire = pframe.marshal(theirs, 5)
    buf = frames.FrameBuffer()
    buf.feed(wire)
    ftype, channel, payload = buf.next_frame()
    assert (ftype, channel) == (frames.METHOD, 5)
    assert payload[:4] == struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID)
    ours = spec.METHODS[struct.unpack_from(">I", payload)[0]].decode(payload, 4)
    assert type(ours) is cls
    assert_same_values(ours, theirs)


@pytest.mark.parametrize("cls", NOT_IN_PAMQP, ids=method_id)
@given(data=st.data())
def test_methods_pamqp_lacks_round_trip(cls, data):
    types = {"realm": "shortstr", "ticket": "short"}
    values = data.draw(st.fixed_dictionaries({
        n: for_amqp_type(types.get(n, "bit"), tables=st.just({}), longstr=st.just(b""))
        for n in cls.__slots__}))
    m = cls(**values)
    assert cls.decode(m.encode(), 4) == m


@pytest.mark.parametrize("cls", ALL_METHODS, ids=method_id)
def test_decode_at_an_offset_and_nothing_after(cls):
    m = cls()
    wire = b"\xce" * 7 + m.encode()
    assert cls.decode(memoryview(wire), 7 + 4) == m
    assert cls.decode(bytearray(wire), 7 + 4) == m
    with pytest.raises(FrameError, match="1 bytes after the arguments"):  # RabbitMQ: 501
        cls.decode(wire + b"z", 7 + 4)


# ------------------------------------------------------------------ properties

PROPERTY_TYPES = {
    "content_type": "shortstr", "content_encoding": "shortstr", "headers": "table",
    "delivery_mode": "octet", "priority": "octet", "correlation_id": "shortstr",
    "reply_to": "shortstr", "expiration": "shortstr", "message_id": "shortstr",
    "timestamp": "timestamp", "type": "shortstr", "user_id": "shortstr", "app_id": "shortstr",
    "cluster_id": "shortstr",
}


def test_property_list_matches_pamqp():
    theirs = pcommands.Basic.Properties.__slots__
    assert [("type" if n == "message_type" else n) for n in theirs] == list(
        spec.Properties.__slots__)
    assert list(PROPERTY_TYPES) == list(spec.Properties.__slots__)


def test_content_header_golden_bytes():
    props = spec.Properties(content_type="text/plain", headers={"a": 1}, delivery_mode=2)
    raw = props.encode()
    assert raw == b"\xb0\x00\x0atext/plain\x00\x00\x00\x04\x01ab\x01\x02"
    frame = frames.encode_content(1, 60, raw, b"hello", 131072)
    assert frame == (
        b"\x02\x00\x01\x00\x00\x00\x22"  # header frame: 12 + 22 bytes of properties
        b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05" + raw + b"\xce"
        b"\x03\x00\x01\x00\x00\x00\x05hello\xce")
    buf = frames.FrameBuffer()
    buf.feed(frame)
    _, _, payload = buf.next_frame()
    assert frames.parse_content_header(payload) == (60, 5, raw)
    assert spec.Properties.decode(raw, 0) == props
    # and pamqp reads the same
    _, _, header = pframe.unmarshal(frame)
    assert (header.class_id, header.body_size) == (60, 5)
    assert header.properties.content_type == "text/plain"
    assert header.properties.headers == {"a": 1}
    assert header.properties.delivery_mode == 2


def test_all_properties_golden_bytes():
    props = spec.Properties(
        content_type="a", content_encoding="b", headers={}, delivery_mode=1, priority=9,
        correlation_id="c", reply_to="d", expiration="e", message_id="f", timestamp=1,
        type="g", user_id="h", app_id="i", cluster_id="j")
    assert props.encode() == (
        b"\xff\xfc\x01a\x01b\x00\x00\x00\x00\x01\x09\x01c\x01d\x01e\x01f"
        b"\x00\x00\x00\x00\x00\x00\x00\x01\x01g\x01h\x01i\x01j")
    assert spec.Properties.decode(props.encode(), 0) == props


def test_no_properties():
    assert spec.Properties().encode() == b"\x00\x00"
    decoded = spec.Properties.decode(b"\x00\x00", 0)
    assert all(getattr(decoded, s) is None for s in spec.Properties.__slots__)


def property_values(tables: st.SearchStrategy[Any], min_str: int = 0
                    ) -> st.SearchStrategy[dict[str, Any]]:
    def one(t: str) -> st.SearchStrategy[Any]:
        if t == "shortstr":
            return utf8_text(255, min_size=min_str)
        if t == "octet":
            return st.integers(0, 255)
        if t == "timestamp":
            return st.integers(0, 2**32 - 1)  # pamqp reads larger values as milliseconds
        return tables
    return st.fixed_dictionaries({}, optional={n: one(t) for n, t in PROPERTY_TYPES.items()})


@given(property_values(tables_for_pamqp_decode()))
def test_our_properties_decode_in_pamqp_to_the_same_values(values):
    raw = spec.Properties(**values).encode()
    frame = frames.encode_content(1, 60, raw, b"", 131072)
    _, _, header = pframe.unmarshal(frame)
    for name in PROPERTY_TYPES:
        theirs = getattr(header.properties, "message_type" if name == "type" else name)
        if name == "timestamp" and theirs is not None:
            theirs = int(theirs.timestamp())
        absent = "" if name == "cluster_id" else None  # pamqp's default for an absent one
        assert theirs == values.get(name, absent), name
    assert spec.Properties.decode(raw, 0) == spec.Properties(**values)


@given(property_values(tables_for_pamqp_encode(), min_str=1))
def test_pamqp_properties_decode_in_leveret_to_the_same_values(values):
    """pamqp leaves out empty-string properties, so strings here are never empty."""
    their_values = {("message_type" if k == "type" else k): v for k, v in values.items()}
    if "timestamp" in their_values:
        their_values["timestamp"] = datetime.datetime.fromtimestamp(
            their_values["timestamp"], datetime.UTC)
    props_cls = type("P", (pcommands.Basic.Properties,), {"validate": lambda self: None})
    header = pheader.ContentHeader(body_size=3, properties=props_cls(**their_values))
    wire = pframe.marshal(header, 2)
    buf = frames.FrameBuffer()
    buf.feed(wire)
    ftype, channel, payload = buf.next_frame()
    assert (ftype, channel) == (frames.HEADER, 2)
    class_id, size, raw = frames.parse_content_header(payload)
    assert (class_id, size) == (60, 3)
    assert spec.Properties.decode(raw, 0) == spec.Properties(**values)


def test_empty_string_properties_survive_in_leveret():
    """pamqp drops '' properties when it marshals; leveret keeps them (flag set, length 0),
    which is what RabbitMQ forwards."""
    raw = spec.Properties(content_type="", message_id="").encode()
    assert raw == b"\x80\x80\x00\x00"
    decoded = spec.Properties.decode(raw, 0)
    assert (decoded.content_type, decoded.message_id) == ("", "")


def test_property_flags_continuation_raises_frame_error():
    with pytest.raises(FrameError):
        spec.Properties.decode(b"\x00\x01\x00\x00", 0)


@pytest.mark.parametrize("raw", [b"", b"\x80", b"\x80\x00", b"\x10\x00", b"\x00\x40\x00\x00",
                                 b"\x20\x00\x00\x00"],
                         ids=["empty", "half the flags", "content_type missing",
                              "delivery_mode missing", "timestamp cut short",
                              "headers size cut short"])
def test_truncated_properties_raise_frame_error(raw):
    with pytest.raises(FrameError):
        spec.Properties.decode(raw, 0)


def test_properties_with_overlong_strings_raise_frame_error():
    with pytest.raises(FrameError):
        spec.Properties.decode(b"\x80\x00\x05ab", 0)
    with pytest.raises(FrameError):
        spec.Properties.decode(b"\x20\x00\x00\x00\x00\x09\x01aV", 0)


# ------------------------------------------------------------------ malformed methods

def cut_points(cls: type[spec.Method]) -> list[bytes]:
    """The default method's payload cut at every length short of complete."""
    wire = cls(**{n: "x" for n in cls.__slots__ if isinstance(getattr(cls(), n), str)}).encode()
    return [wire[:n] for n in range(4, len(wire))]


def test_method_payloads_cut_short_do_not_decode_silently():
    """Every method with arguments, cut at every point: decode must raise (something)."""
    for cls in WITH_FIELDS:
        for wire in cut_points(cls):
            with pytest.raises(Exception):  # noqa: B017 - the type is the xfail below
                cls.decode(wire, 4)


def test_method_payloads_cut_short_raise_frame_error():
    for cls in WITH_FIELDS:
        for wire in cut_points(cls):
            with pytest.raises(FrameError):
                cls.decode(wire, 4)


def test_missing_bit_octet_raises_frame_error():
    with pytest.raises(FrameError):
        spec.BasicAck.decode(b"\x00\x3c\x00\x50" + b"\x00" * 8, 4)


def test_cut_integer_field_raises_frame_error():
    with pytest.raises(FrameError):
        spec.ConnectionTune.decode(b"\x00\x0a\x00\x1e\x07\xff\x00", 4)


def test_method_with_overlong_string_raises_frame_error():
    with pytest.raises(FrameError):
        spec.QueueDeclare.decode(b"\x00\x32\x00\x0a\x00\x00\x09q1\x00\x00\x00\x00\x00", 4)
    with pytest.raises(FrameError):
        spec.ConnectionSecure.decode(b"\x00\x0a\x00\x14\x00\x00\x00\x09abc", 4)


def test_method_with_bad_table_raises_frame_error():
    wire = spec.QueueDeclare(queue="q", arguments={"a": 1}).encode().replace(b"\x01ab", b"\x01aZ")
    with pytest.raises(FrameError):
        spec.QueueDeclare.decode(wire, 4)


def test_table_value_helpers_are_shared_with_fields():
    assert spec.encode_table is fields.encode_table
    assert spec.decode_table is fields.decode_table


def test_properties_refuse_bytes_their_flags_do_not_name():
    with pytest.raises(FrameError, match="1 bytes after the properties"):
        spec.Properties.decode(b"\x10\x00\x02\x02", 0)


def test_only_content_methods_take_short_strings_that_are_not_utf8():
    """RabbitMQ takes any bytes in basic.publish's exchange and routing key (and so hands
    them out in deliver, return and get-ok) but refuses them in the other methods."""
    publish = spec.BasicPublish(exchange="", routing_key=b"\xff".decode("utf-8",
                                                                       "surrogateescape"))
    assert spec.BasicPublish.decode(publish.encode(), 4) == publish
    declare = spec.QueueDeclare(queue=b"\xff".decode("utf-8", "surrogateescape")).encode()
    with pytest.raises(FrameError, match="Malformed UTF-8 in shortstr"):
        spec.QueueDeclare.decode(declare, 4)
