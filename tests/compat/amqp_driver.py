"""A tiny blocking AMQP 0-9-1 client that records every frame a server sends.

It is the observer of the differential tests: a scenario drives it against a broker and
gets back a plain record (lists, tuples, dicts of str/int/bytes) of what the server said,
so the records of leveret and of RabbitMQ can be compared with ``==``.

It is built on leveret's own codec (``leveret.amqp.frames``/``spec``); the codec has its own
unit tests against pamqp, and any decode failure here is recorded, not hidden.

Recording rules, chosen so that two correct brokers give equal records:

* every method the server sends is recorded as ``(channel, name, {field: value})``;
  content (deliver, get-ok, return) is grouped with its header and body frames into
  ``(channel, name, fields, properties, body, body frame sizes, class id, body size)``,
  the properties with the wire type tags of their headers table;
* a synchronous call records only its answer (the -ok or a close); asynchronous frames
  (deliveries, returns, confirms) stay queued until a scenario ``collect``s them, since
  whether they overtake an -ok is a race in any broker; frames nobody collected are
  recorded as "unclaimed" when the scenario ends, so extra frames still show;
* frames are recorded per channel in arrival order; frames of different channels are
  never interleaved in one list (their relative order is a race in any broker);
* a server ``channel.close`` / ``connection.close`` is recorded and answered with the
  matching close-ok, as every client does;
* publisher confirms are summarised as sets of acked/nacked tags (coalescing with
  ``multiple`` is the broker's choice), see ``Channel.confirms``;
* connection.start's ``mechanisms`` and ``locales`` (space-separated lists whose order
  RabbitMQ does not fix: a fresh node has offered "AMQPLAIN PLAIN", another
  "PLAIN AMQPLAIN") are recorded as sorted lists of their words, i.e. compared as sets;
* names the server makes up (``amq.gen-*``, ``amq.ctag-*``, direct reply-to names) are
  replaced by numbered placeholders in order of first appearance, the run's unique name
  prefix is removed, and timestamps within a day of now (x-death 'time') are masked
  (``normalise``).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import socket
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from leveret.amqp import fields as amqp_fields
from leveret.amqp import frames, spec
from leveret.errors import LeveretError

TERMINAL = ("eof", "decode-error", "channel.close", "connection.close")

CLIENT_CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}

# How long to wait for an answer the scenario expects, and how long "nothing more arrives"
# is watched for. RabbitMQ answers on loopback within a few milliseconds.
REPLY_TIMEOUT = 5.0
QUIET = 0.15


@dataclass(frozen=True)
class URL:
    host: str
    port: int
    user: str
    password: str
    vhost: str

    @classmethod
    def parse(cls, url: str) -> URL:
        u = urlparse(url)
        path = u.path
        vhost = "/" if path in ("", "/") else unquote(path[1:])
        return cls(u.hostname or "127.0.0.1", u.port or 5672, unquote(u.username or "guest"),
                   unquote(u.password or "guest"), vhost)


def reachable(url: str, timeout: float = 1.0) -> bool:
    u = URL.parse(url)
    try:
        with socket.create_connection((u.host, u.port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- observations

def method_fields(m: spec.Method) -> dict[str, Any]:
    out = {s: getattr(m, s) for s in m.__slots__}
    if isinstance(m, spec.ConnectionStart):
        # product, version, platform, copyright, information, cluster_name must differ
        props = out.pop("server_properties")
        out["capabilities"] = props.get("capabilities")
        # the order of these lists is the server's arbitrary choice: compare them as sets
        for key in ("mechanisms", "locales"):
            out[key] = word_set(out[key])
    return out


def word_set(value: bytes) -> list[bytes]:
    """A space-separated list as the sorted list of its distinct words (a set that prints
    in a stable order); a value with empty words, doubled spaces for example, is kept as it
    is, so a malformed list still shows as a difference."""
    words = value.split(b" ")
    return sorted(set(words)) if all(words) and len(set(words)) == len(words) else [value]


def props_dict(raw: bytes) -> dict[str, Any]:
    """Decoded properties, plus the wire type tags of the headers table: a client that
    keeps types (most do) sees a header re-encoded as another integer width."""
    p = spec.Properties.decode(raw, 0)
    out = {s: getattr(p, s) for s in p.__slots__ if getattr(p, s) is not None}
    if p.headers is not None:
        off = 2
        for flag in (0x8000, 0x4000):
            if raw[0] << 8 & flag:
                off += 1 + raw[off]
        out["headers/types"] = table_types(raw, off)[0]
    return out


def table_types(buf: bytes, off: int) -> tuple[dict[str, Any], int]:
    (size,) = struct.unpack_from(">I", buf, off)
    off += 4
    end = off + size
    types: dict[str, Any] = {}
    while off < end:
        key, off = amqp_fields.decode_shortstr(buf, off)
        types[key], off = value_types(buf, off)
    return types, end


def value_types(buf: bytes, off: int) -> tuple[Any, int]:
    tag = chr(buf[off])
    if tag == "F":
        inner, end = table_types(buf, off + 1)
        return ("F", inner), end
    if tag == "A":
        (size,) = struct.unpack_from(">I", buf, off + 1)
        pos, end = off + 5, off + 5 + size
        items = []
        while pos < end:
            t, pos = value_types(buf, pos)
            items.append(t)
        return ("A", items), end
    _, end = amqp_fields.decode_value(buf, off)
    return tag, end


@dataclass
class Frame:
    type: int
    channel: int
    payload: bytes


@dataclass
class Channel:
    conn: Connection
    number: int
    is_open: bool = True
    confirmed: set[int] = field(default_factory=set)
    inbox: deque[tuple[Any, ...]] = field(default_factory=deque)

    # ----- sending
    def send(self, method: spec.Method) -> None:
        self.conn.send_method(self.number, method)

    def publish(self, exchange: str, routing_key: str, body: bytes = b"",
                properties: spec.Properties | bytes | None = None, *, mandatory: bool = False,
                immediate: bool = False, frame_max: int | None = None) -> None:
        """basic.publish + content; ``properties`` may be raw (flags + values) bytes."""
        if isinstance(properties, bytes):
            props = properties
        else:
            props = (properties or spec.Properties()).encode()
        data = frames.encode_method(self.number, spec.BasicPublish(
            exchange=exchange, routing_key=routing_key, mandatory=mandatory,
            immediate=immediate))
        data += frames.encode_content(self.number, 60, props, body,
                                      frame_max or self.conn.frame_max)
        self.conn.send_raw(data)

    # ----- receiving
    def call(self, method: spec.Method, reply: str | tuple[str, ...] | None = None,
             record: bool = True) -> tuple[Any, ...]:
        """Send a synchronous method; return (and record) its answer on this channel.

        The answer is the method's -ok, or whatever ends the wait: a channel.close, a
        connection.close, the connection dropping, or a timeout. Asynchronous frames
        (deliveries, returns, confirms) that arrive meanwhile stay queued for ``collect``:
        whether they come before or after the -ok is a race in any broker.
        """
        self.send(method)
        got = self.wait_for(reply or method.REPLY)
        if record:
            self.conn.record(method.NAME, got)
        return got[-1]

    def call_with_raw_arguments(self, method: spec.Method, arguments: bytes) -> tuple[Any, ...]:
        """``call`` with the method's trailing ``arguments`` table replaced by raw bytes
        (see ``raw_table``): argument values of wire types of the scenario's choosing."""
        payload = method.encode()
        assert payload.endswith(b"\x00\x00\x00\x00"), "arguments must be empty and last"
        payload = payload[:-4] + arguments
        self.conn.send_raw(raw_frame(frames.METHOD, self.number, payload))
        got = self.wait_for(method.REPLY)
        self.conn.record(method.NAME + " (raw arguments)", got)
        return got[-1]

    def wait_for(self, name: str | tuple[str, ...] | None,
                 timeout: float = REPLY_TIMEOUT) -> list[Any]:
        """The first frame named ``name`` on this channel, leaving other frames queued.

        A close (channel, connection) or the end of the socket ends the wait too; frames
        queued before a channel.close are returned with it, since nothing follows it."""
        names = (name,) if isinstance(name, str) or name is None else name
        deadline = time.monotonic() + timeout
        while True:
            for i, obs in enumerate(self.inbox):
                if obs[1] in names:
                    del self.inbox[i]
                    return [obs]
                if obs[1] in TERMINAL:
                    return [self.inbox.popleft() for _ in range(i + 1)]
            if self.number and (closing := self.conn.take_connection_close()):
                return [closing]  # the whole connection closed while this channel waited
            if not self.conn.pump(deadline):
                if self.conn.dead is not None:
                    return [self.conn.dead]
                return [(None, "timeout", name)]

    def next(self, deadline: float) -> tuple[Any, ...] | None:
        while not self.inbox:
            if self.number and (closing := self.conn.take_connection_close()):
                return closing  # the whole connection closed while this channel waited
            if not self.conn.pump(deadline):
                if self.conn.dead is not None:
                    return self.conn.dead
                return None
        return self.inbox.popleft()

    def collect(self, count: int | None = None, timeout: float = REPLY_TIMEOUT,
                quiet: float = QUIET, label: str = "collect",
                summary: Callable[[list[Any]], Any] | None = None) -> list[Any]:
        """Record what arrives on this channel: ``count`` observations (then watch ``quiet``
        seconds for extras), or everything until nothing arrives for ``quiet`` seconds.

        ``summary`` records ``summary(observations)`` instead of the observations, for
        arrivals whose order is a race (two queues delivering to one channel)."""
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while count is not None and len(out) < count:
            obs = self.next(deadline)
            if obs is None:
                out.append((None, "timeout"))
                break
            out.append(obs)
            if obs[1] in ("eof", "connection.close"):
                break
        while not out or out[-1][1] not in ("eof", "connection.close"):
            obs = self.next(time.monotonic() + quiet)
            if obs is None:
                break
            out.append(obs)
        self.conn.record(label, summary(out) if summary else out)
        return out

    def confirms(self, last_tag: int, timeout: float = REPLY_TIMEOUT,
                 label: str = "confirms") -> dict[str, Any]:
        """Wait until publisher confirms cover tags 1..last_tag; record a summary.

        How acks are coalesced (``multiple``) is the broker's free choice, and so is the
        interleaving of confirms for different messages, so the record holds: the tags
        acked, the tags nacked, every other frame in order (returns, closes), and whether
        each returned message's basic.return came before its confirm, as the spec demands.
        """
        acked: set[int] = set()
        nacked: set[int] = set()
        done = self.confirmed
        others: list[Any] = []
        returned_before_confirm: list[bool] = []
        returns_pending = 0
        deadline = time.monotonic() + timeout
        while not done.issuperset(range(1, last_tag + 1)):
            obs = self.next(deadline)
            if obs is None:
                others.append((None, "timeout"))
                break
            name = obs[1]
            if name in ("basic.ack", "basic.nack"):
                tag, multiple = obs[2]["delivery_tag"], obs[2]["multiple"]
                tags = ({t for t in range(1, tag + 1) if t not in done} if multiple
                        else {tag})
                (acked if name == "basic.ack" else nacked).update(tags)
                done.update(tags)
                while returns_pending and tags:
                    returned_before_confirm.append(True)
                    returns_pending -= 1
                continue
            if name == "basic.return":
                returns_pending += 1
            others.append(obs)
            if name in ("eof", "channel.close", "connection.close"):
                break
        summary = {"acked": sorted(acked), "nacked": sorted(nacked), "other frames": others,
                   "returns before their confirms": returned_before_confirm}
        self.conn.record(label, summary)
        return summary

    # ----- conveniences that record their answer
    def open(self) -> Any:
        return self.call(spec.ChannelOpen())

    def close(self) -> Any:
        got = self.call(spec.ChannelClose(200, "bye", 0, 0))
        self.is_open = False
        return got

    def qd(self, queue: str = "", **kw: Any) -> Any:
        if queue:
            self.conn.session.queues.add(queue)
        got = self.call(spec.QueueDeclare(queue=queue, **kw))
        if got and len(got) > 2 and got[1] == "queue.declare-ok":
            self.conn.session.queues.add(got[2]["queue"])
        return got

    def ed(self, exchange: str, type: str = "direct", **kw: Any) -> Any:
        self.conn.session.exchanges.add(exchange)
        return self.call(spec.ExchangeDeclare(exchange=exchange, type=type, **kw))

    def bind(self, queue: str, exchange: str, routing_key: str = "",
             arguments: dict[str, Any] | None = None) -> Any:
        return self.call(spec.QueueBind(queue=queue, exchange=exchange, routing_key=routing_key,
                                        arguments=arguments))

    def get(self, queue: str, no_ack: bool = True) -> Any:
        return self.call(spec.BasicGet(queue=queue, no_ack=no_ack),
                         reply=("basic.get-ok", "basic.get-empty"))

    def drain_queue(self, queue: str, limit: int = 1000) -> list[bytes]:
        """basic.get until empty; returns the bodies (each get is recorded)."""
        bodies = []
        for _ in range(limit):
            got = self.get(queue)
            if got[1] != "basic.get-ok":
                break
            bodies.append(got[4])
        return bodies

    def consume(self, queue: str, consumer_tag: str = "", **kw: Any) -> Any:
        return self.call(spec.BasicConsume(queue=queue, consumer_tag=consumer_tag, **kw))

    def ack(self, tag: int, multiple: bool = False) -> None:
        self.send(spec.BasicAck(delivery_tag=tag, multiple=multiple))

    def nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.send(spec.BasicNack(delivery_tag=tag, multiple=multiple, requeue=requeue))

    def reject(self, tag: int, requeue: bool = True) -> None:
        self.send(spec.BasicReject(delivery_tag=tag, requeue=requeue))

    def sync(self, label: str = "sync") -> Any:
        """A round trip on this channel that changes nothing (passive declare of amq.direct):
        everything the server sent on this channel before it has arrived after it."""
        self.send(spec.ExchangeDeclare(exchange="amq.direct", type="direct", passive=True))
        got = self.wait_for("exchange.declare-ok")
        self.conn.record(label, got)
        return got[-1]


class Connection:
    """One AMQP connection to a broker; frames are read only when a scenario waits."""

    def __init__(self, session: Session, url: str, *, frame_max: int = 131072,
                 channel_max: int = 2047, heartbeat: int = 0, vhost: str | None = None,
                 handshake: bool = True, record_handshake: bool = False,
                 tune_ok: dict[str, int] | None = None) -> None:
        self.session = session
        self.index = len(session.connections) + 1
        self.record_handshake = record_handshake
        self.tune_ok_override = tune_ok
        self.url = URL.parse(url)
        self.sock = socket.create_connection((self.url.host, self.url.port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = frames.FrameBuffer(frame_max=1 << 30)
        self.channels: dict[int, Channel] = {0: Channel(self, 0)}
        self.frame_max = frame_max
        self.dead: tuple[Any, ...] | None = None
        self.server_closed = False
        self.pending_content: dict[int, list[Any]] = {}
        self.tune: dict[str, Any] = {}
        if handshake:
            self.handshake(frame_max=frame_max, channel_max=channel_max, heartbeat=heartbeat,
                           vhost=self.url.vhost if vhost is None else vhost)

    # ----- recording
    def record(self, label: str, observations: Any) -> None:
        if self.index > 1:
            label = f"[connection {self.index}] {label}"
        self.session.log.append((label, observations))

    def take_connection_close(self) -> tuple[Any, ...] | None:
        inbox = self.channels[0].inbox
        for obs in inbox:
            if obs[1] == "connection.close":
                inbox.remove(obs)
                return obs
        return None

    # ----- wire
    def send_raw(self, data: bytes) -> None:
        if self.dead is not None:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.dead = (None, "eof")

    def send_method(self, channel: int, method: spec.Method) -> None:
        self.send_raw(frames.encode_method(channel, method))

    def pump(self, deadline: float) -> bool:
        """Read until at least one frame was dispatched; False on timeout or a dead socket."""
        while True:
            if self.dead is not None:
                return False
            try:
                frame = self.buf.next_frame()
            except LeveretError as exc:  # our codec refused what the server sent
                self.dead = (None, "decode-error", repr(exc))
                return False
            if frame is not None:
                self.buf.compact()
                self.dispatch(Frame(*frame))
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            except OSError:
                self.dead = (None, "eof")
                return False
            if not data:
                self.dead = (None, "eof")
                return False
            self.buf.feed(data)

    def dispatch(self, f: Frame) -> None:
        ch = self.channels.get(f.channel)
        if ch is None:
            ch = self.channels[f.channel] = Channel(self, f.channel, is_open=False)
        try:
            obs = self.observe(f)
        except Exception as exc:
            obs = (f.channel, "decode-error", f.type, type(exc).__name__, f.payload[:64])
        if obs is None:  # content still being assembled
            return
        ch.inbox.append(obs)
        name = obs[1]
        if name == "channel.close":
            ch.is_open = False
            self.send_method(f.channel, spec.ChannelCloseOk())
        elif name == "connection.close":
            self.server_closed = True
            self.send_method(0, spec.ConnectionCloseOk())
            for c in self.channels.values():
                c.is_open = False

    def observe(self, f: Frame) -> tuple[Any, ...] | None:
        if f.type == frames.METHOD:
            (index,) = struct.unpack_from(">I", f.payload, 0)
            cls = spec.METHODS.get(index)
            if cls is None:
                return (f.channel, "unknown-method", index >> 16, index & 0xFFFF)
            m = cls.decode(f.payload, 4)
            if cls.CONTENT:
                self.pending_content[f.channel] = [m, None, b"", []]
                return None
            return (f.channel, cls.NAME, method_fields(m))
        if f.type == frames.HEADER:
            pend = self.pending_content.get(f.channel)
            class_id, size, raw = frames.parse_content_header(f.payload)
            props = props_dict(raw)
            if pend is None:
                return (f.channel, "stray-header", class_id, size, props)
            pend[1] = (class_id, size, props)
            if size == 0:
                return self.finish_content(f.channel)
            return None
        if f.type == frames.BODY:
            pend = self.pending_content.get(f.channel)
            if pend is None or pend[1] is None:
                return (f.channel, "stray-body", f.payload)
            pend[2] += f.payload
            pend[3].append(len(f.payload))
            if len(pend[2]) >= pend[1][1]:
                return self.finish_content(f.channel)
            return None
        if f.type == frames.HEARTBEAT:
            return (f.channel, "heartbeat")
        return (f.channel, "unknown-frame-type", f.type)

    def finish_content(self, channel: int) -> tuple[Any, ...]:
        """``(channel, method, fields, properties, body, body frame sizes, class id, size)``;
        a body over 64 bytes is recorded as its length and a digest, to keep diffs short."""
        m, (class_id, size, props), body, sizes = self.pending_content.pop(channel)
        if len(body) > 64:
            body = f"<{len(body)} bytes, sha1 {hashlib.sha1(body).hexdigest()[:16]}>"
        return (channel, m.NAME, method_fields(m), props, body, tuple(sizes), class_id, size)

    # ----- connection lifecycle
    def handshake(self, *, frame_max: int, channel_max: int, heartbeat: int,
                  vhost: str) -> None:
        """Open the connection. The handshake is recorded only if ``record_handshake`` or
        if it did not go start -> tune -> open-ok (a scenario about login or vhosts)."""
        steps: list[tuple[str, Any]] = []
        ok = self._handshake(steps, frame_max, channel_max, heartbeat, vhost)
        if self.record_handshake or not ok:
            self.session.log.extend(steps)

    def _handshake(self, steps: list[tuple[str, Any]], frame_max: int, channel_max: int,
                   heartbeat: int, vhost: str) -> bool:
        self.send_raw(frames.PROTOCOL_HEADER)
        c0 = self.channels[0]
        start = c0.wait_for("connection.start")
        steps.append(("connection.start", start))
        if start[-1][1] != "connection.start":
            return False
        response = f"\0{self.url.user}\0{self.url.password}".encode()
        self.send_method(0, spec.ConnectionStartOk(
            client_properties={"product": "leveret-compat", "capabilities": CLIENT_CAPABILITIES},
            mechanism="PLAIN", response=response, locale="en_US"))
        tune = c0.wait_for("connection.tune")
        steps.append(("connection.tune", tune))
        if tune[-1][1] != "connection.tune":
            return False
        server = tune[-1][2]

        def negotiate(ours: int, theirs: int) -> int:
            return min(ours, theirs) if ours and theirs else (ours or theirs)

        self.frame_max = negotiate(frame_max, server["frame_max"])
        self.tune = {"channel_max": negotiate(channel_max, server["channel_max"]),
                     "frame_max": self.frame_max, "heartbeat": heartbeat}
        if self.tune_ok_override:  # a scenario that sends what a client must not
            self.tune.update(self.tune_ok_override)
        self.send_method(0, spec.ConnectionTuneOk(**self.tune))
        self.send_method(0, spec.ConnectionOpen(virtual_host=vhost))
        opened = c0.wait_for("connection.open-ok")
        steps.append(("connection.open", opened))
        return opened[-1][1] == "connection.open-ok"

    def channel(self, number: int | None = None, open: bool = True) -> Channel:
        if number is None:
            number = max(self.channels) + 1
        ch = self.channels.get(number)
        if ch is None:
            ch = self.channels[number] = Channel(self, number, is_open=False)
        if open:
            ch.open()
            ch.is_open = True
        return ch

    def collect(self, quiet: float = QUIET, label: str = "connection") -> list[Any]:
        """Record whatever arrives on channel 0 (connection.close, EOF) within ``quiet``."""
        return self.channels[0].collect(quiet=quiet, label=label)

    def wait_close(self, timeout: float = REPLY_TIMEOUT, label: str = "connection") -> Any:
        """Wait for the server to close the connection; record the close (and the EOF)."""
        got = self.channels[0].wait_for("connection.close", timeout)
        if got and got[-1][1] == "connection.close":
            # RabbitMQ drops the socket after our close-ok; wait for that too
            deadline = time.monotonic() + timeout
            while self.pump(deadline):
                pass
            got.append(self.dead or (None, "still-open"))
        self.record(label, got)
        return got[-1]

    def read_raw(self, timeout: float = REPLY_TIMEOUT) -> tuple[bytes, str]:
        """Raw bytes until the server closes the socket (for protocol header replies)."""
        data = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(data), "open"
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return bytes(data), "open"
            except OSError:
                chunk = b""
            if not chunk:
                self.dead = (None, "eof")
                return bytes(data), "eof"
            data += chunk

    def wait_gone(self, timeout: float = REPLY_TIMEOUT, label: str = "connection") -> None:
        """Record only whether the server ended the connection, not how.

        For inputs on which RabbitMQ's reader process crashes (it drops the socket with no
        connection.close): a broker that sends a proper connection.close first is as good."""
        deadline = time.monotonic() + timeout
        while self.pump(deadline):
            pass
        self.record(label, "gone" if self.dead is not None else "still open")

    def close(self) -> None:
        if self.dead is None and not self.server_closed:
            self.send_method(0, spec.ConnectionClose(200, "bye", 0, 0))
            got = self.channels[0].wait_for("connection.close-ok", timeout=2.0)
            self.record("connection.close", got)
        self.shutdown()

    def shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.dead is None:
            self.dead = (None, "eof")


# --------------------------------------------------------------------------- sessions

class Session:
    """One run of one scenario against one broker: connections, names, the record."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.run_id = uuid.uuid4().hex[:10]
        self.log: list[tuple[str, Any]] = []
        self.connections: list[Connection] = []
        self.queues: set[str] = set()
        self.exchanges: set[str] = set()

    def name(self, base: str) -> str:
        """A name unique to this run; ``normalise`` turns it back into ``base``-ish."""
        return f"compat.{self.run_id}.{base}"

    def q(self, base: str) -> str:
        n = self.name(base)
        self.queues.add(n)
        return n

    def x(self, base: str) -> str:
        n = self.name(base)
        self.exchanges.add(n)
        return n

    def connect(self, **kw: Any) -> Connection:
        c = Connection(self, self.url, **kw)
        self.connections.append(c)
        return c

    def note(self, label: str, value: Any) -> None:
        """Record a value the scenario computed (a count, a set, a summary)."""
        self.log.append((label, value))

    def close(self) -> None:
        """Close every connection, then record the frames no step claimed ("unclaimed"):
        everything the server sent before its close-ok, so extra deliveries show up."""
        for c in self.connections:
            if c.dead is None:
                try:
                    c.close()
                except OSError:
                    c.shutdown()
            else:
                c.shutdown()
            unclaimed = {n: list(ch.inbox) for n, ch in sorted(c.channels.items()) if ch.inbox}
            if unclaimed:
                c.record("unclaimed", unclaimed)
        self.cleanup()

    def cleanup(self) -> None:
        """Delete what the scenario declared, on a connection whose frames are not recorded."""
        if not (self.queues or self.exchanges):
            return
        scratch = Session(self.url)
        try:
            c = Connection(scratch, self.url)
            ch = c.channel()
            for q in sorted(self.queues):
                if not ch.is_open:
                    ch = c.channel()
                ch.call(spec.QueueDelete(queue=q))
            for x in sorted(self.exchanges):
                if not ch.is_open:
                    ch = c.channel()
                ch.call(spec.ExchangeDelete(exchange=x))
            c.close()
        except OSError:
            pass


# Scenarios of RabbitMQ features that leveret does not have yet, with the issue that
# brings them. They are expected to differ (strictly: the mark must go when they pass),
# except when LEVERET_TEST_URL points both sides at RabbitMQ to check the scenarios.
NOT_YET: dict[str, str] = {}


def collect_scenarios(namespace: dict[str, Any]) -> dict[str, Any]:
    """The ``scenario_*`` functions of a module, by name without the prefix."""
    import pytest

    checking_scenarios = bool(os.environ.get("LEVERET_TEST_URL"))
    found: dict[str, Any] = {}
    for k, v in namespace.items():
        if not (k.startswith("scenario_") and callable(v)):
            continue
        name = k.removeprefix("scenario_")
        reason = NOT_YET.get(name)
        found[name] = v if reason is None else pytest.param(v, marks=pytest.mark.xfail(
            not checking_scenarios, reason=f"not in leveret yet: {reason}", strict=True))
    return found


def raw_table(*items: tuple[str, bytes]) -> bytes:
    """A field table from (key, type tag + encoded value) pairs: wire types of our choosing."""
    body = b"".join(bytes([len(k.encode())]) + k.encode() + v for k, v in items)
    return struct.pack(">I", len(body)) + body


def raw_headers(*items: tuple[str, bytes]) -> bytes:
    """Content properties with only ``headers`` set, from ``raw_table`` items."""
    return struct.pack(">H", 0x2000) + raw_table(*items)


def raw_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


def raw_header(channel: int, body_size: int, properties: bytes = b"\x00\x00",
               class_id: int = 60) -> bytes:
    return raw_frame(frames.HEADER, channel,
                     struct.pack(">HHQ", class_id, 0, body_size) + properties)


def raw_body(channel: int, data: bytes) -> bytes:
    return raw_frame(frames.BODY, channel, data)


def run_scenario(scenario: Any, url: str) -> list[Any]:
    """Run ``scenario(session)`` against ``url``; return its normalised record."""
    s = Session(url)
    try:
        scenario(s)
    finally:
        s.close()
    return normalise(s.log, s.run_id)


# --------------------------------------------------------------------------- normalising

GENERATED = [
    ("amq.gen-", re.compile(r"amq\.gen-[A-Za-z0-9_\-]+")),
    ("amq.ctag-", re.compile(r"amq\.ctag-[A-Za-z0-9_\-]+")),
    ("amq.rabbitmq.reply-to.", re.compile(r"amq\.rabbitmq\.reply-to\.[A-Za-z0-9_\-+/=.]+")),
]


class _Names:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seen: dict[str, str] = {}

    def text(self, s: str) -> str:
        s = s.replace(f"compat.{self.run_id}.", "compat.").replace(self.run_id, "<id>")
        for prefix, rx in GENERATED:
            s = rx.sub(lambda m, p=prefix: self.placeholder(p, m.group(0)), s)
        return s

    def placeholder(self, prefix: str, name: str) -> str:
        if name not in self.seen:
            n = sum(1 for v in self.seen.values() if v.startswith(prefix)) + 1
            self.seen[name] = f"{prefix}<{n}>"
        return self.seen[name]


def normalise(record: Any, run_id: str) -> Any:
    names = _Names(run_id)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return names.text(v)
        if isinstance(v, bytes | bytearray):
            try:
                t = bytes(v).decode()
            except UnicodeDecodeError:
                return bytes(v)
            return names.text(t).encode()
        if isinstance(v, tuple):
            return tuple(walk(x) for x in v)
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, datetime.datetime) and abs(v.timestamp() - time.time()) < 86400:
            return "<recent timestamp>"  # made by the server (x-death 'time'), differs per run
        return v

    return walk(record)
