"""The client's wire layer: the protocol machine, batched writes, flow control, heartbeats.

Receive: bytes go to the role-agnostic ``amqp.connection.ProtocolMachine`` (client role),
which checks the frames and the states and assembles content, and calls ``Connection`` (its
owner) once per event. Beside its tables, the three methods a consumer and a confirming
producer receive by the thousand (basic.deliver, basic.ack, basic.nack) are parsed by hand
with ``struct.unpack_from`` instead of building method objects.

Send: frames are appended to one bytearray and written with a single ``transport.write``
per event-loop iteration (``call_soon``), so a producer publishing 500 messages in a loop
costs one syscall, not 500.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

from leveret.amqp import frames, spec
from leveret.amqp.connection import ChannelState, ConnectionState, FastMethod, ProtocolMachine
from leveret.amqp.content import ContentAssembler, FastDeliver
from leveret.client.errors import AMQPClosed, ConnectionClosed
from leveret.client.links import ChannelLink
from leveret.errors import REPLY_NAMES, AMQPError

_HEAD = struct.Struct(">BHI")
_H = struct.Struct(">H")
_I = struct.Struct(">I")
_Q = struct.Struct(">Q")
_QB = struct.Struct(">QB")
_DELIVER = spec.BasicDeliver.INDEX
_ACK = spec.BasicAck.INDEX
_FAST = frozenset({_DELIVER, _ACK, spec.BasicNack.INDEX})
_OPEN = ChannelState.OPEN
WRITE_HIGH_WATER = 512 * 1024


def _completing(tail: bytes, data: bytes, frame_max: int) -> int:
    """How many bytes of ``data`` finish the frame left unfinished at the end of ``tail``
    (which starts where a frame starts) and, if that is a basic.deliver or its content
    header, the content frames after it that ``data`` holds whole, so the fast lane sees
    the message in one piece; -1 if ``data`` does not finish that frame."""
    pos = 0
    while len(tail) - pos >= 7:  # the unfinished frame: after the whole ones
        end = pos + 8 + _HEAD.unpack_from(tail, pos)[2]
        if end > len(tail):
            break
        pos = end
    head = tail[pos:] + data[:7] if len(tail) - pos < 7 else tail[pos : pos + 7]
    if len(head) < 7:
        return -1
    ftype, _ch, size = _HEAD.unpack_from(head, 0)
    if size + 8 > frame_max:
        return len(data)  # too big a frame: the machine says so
    k = pos + 8 + size - len(tail)
    if k > len(data):
        return -1
    for _ in range(2 if ftype in (1, 2) else 0):
        if len(data) - k < 7:
            break
        ftype, _ch, size = _HEAD.unpack_from(data, k)
        if ftype not in (2, 3) or k + 8 + size > len(data):
            break
        k += 8 + size
    return k


class FrameProtocol(asyncio.Protocol):
    """Framing and I/O shared by :class:`leveret.client.Connection`."""

    # the protocol machine; Connection, its owner, creates it
    _amqp: ProtocolMachine

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._tail = b""  # an unfinished frame left over from the previous chunk
        self._wbuf = bytearray()
        # written before _wbuf: earlier buffers and large bodies, for one vectored write
        self._wparts: list[bytes | bytearray] = []
        self._flush_pending = False
        self._paused = False  # transport buffer above its high-water mark
        self._blocked = False  # connection.blocked from the server (resource alarm)
        self._writable: asyncio.Future[None] | None = None
        self._channels: dict[int, ChannelLink] = {}
        self.frame_max = frames.DEFAULT_FRAME_MAX
        self._closed: AMQPClosed | None = None
        self._lost: asyncio.Future[None] = self._loop.create_future()
        # heartbeats: flags instead of timestamps keep time calls off the hot path
        self._hb_interval = 0.0
        self._hb_handle: asyncio.TimerHandle | None = None
        self._recv_flag = False
        self._sent_flag = False
        self._hb_silent_ticks = 0

    def _fast_methods(self) -> dict[int, FastMethod]:
        """The hand-written receivers, for the machine's ``fast_methods``."""
        return {spec.BasicDeliver.INDEX: self._fast_deliver,
                spec.BasicAck.INDEX: self._fast_ack, spec.BasicNack.INDEX: self._fast_nack}

    # -- hooks implemented by Connection ----------------------------------------------
    def _set_closed(self, exc: AMQPClosed) -> None:
        raise NotImplementedError

    # -- transport callbacks ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast
        self._transport = cast(asyncio.Transport, transport)
        # the default 64 KiB high-water mark pauses a fast producer after every batch or
        # two of large messages; a deeper buffer keeps the socket busy between turns
        self._transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self._amqp.transport_closed()
        self._set_closed(ConnectionClosed(0, f"connection lost: {exc or 'closed by peer'}"))
        self._transport = None
        if self._hb_handle is not None:
            self._hb_handle.cancel()
        if not self._lost.done():
            self._lost.set_result(None)
        self._wake_writers()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writers()

    def data_received(self, data: bytes) -> None:
        self._recv_flag = True
        amqp = self._amqp
        try:
            start = 0
            if self._tail:
                # complete the unfinished frame (and its message) with the start of this
                # chunk; the rest of the chunk is read where it is, not copied behind it
                start = _completing(self._tail, data, amqp.frame_max)
                if start < 0:
                    self._tail += data
                    return
                head = self._tail + data[:start]
                self._tail = b""
                self._fast_lane(head, 0)
                if self._tail:  # (cannot be: head ends where a frame ends)
                    self._tail += data[start:]
                    return
            if amqp.state is ConnectionState.RUNNING and not amqp.buffered:
                self._fast_lane(data, start)
            else:
                amqp.receive_data(data[start:] if start else data)
        except AMQPError as exc:  # a broken frame or order: nothing after it can be trusted
            self._fail(ConnectionClosed(exc.reply_code, exc.reply_text), exc.reply_code)
        except Exception as exc:
            self._fail(exc, 541)

    def _fast_lane(self, data: bytes, pos: int) -> None:
        """The fast path beside the machine, for a consumer under load: a basic.deliver whose
        content header and single body frame are all in this chunk goes to its consumer in
        one step, and basic.ack / basic.nack straight to their channel. Every other run of
        whole frames goes to the machine as it came; so does anything the lane is not sure
        of (a bad frame end, a channel the machine does not call open), for the machine to
        judge. An unfinished frame at the end waits in ``_tail``, so the machine never holds
        half a frame and the lane keeps going with the next chunk."""
        amqp = self._amqp
        machine_channels = amqp.channels
        channels = self._channels
        frame_max = amqp.frame_max
        n = len(data)
        start = pos  # [start, pos): whole frames for the machine
        while n - pos >= 8:
            ftype, ch, size = _HEAD.unpack_from(data, pos)
            end = pos + 7 + size
            if end >= n:
                break
            if ftype == 1 and ch and data[end] == 0xCE:
                index = _I.unpack_from(data, pos + 7)[0]
                if index in _FAST:
                    if start < pos:  # first what came before (the end of a split message?)
                        amqp.receive_data(data[start:pos])
                        start = pos
                    # the machine has the channel open and expects no content on it
                    state = machine_channels.get(ch)
                    if state is None or state.state is not _OPEN or (
                            state.content.head is not None) or ch not in channels:
                        pos = end + 1
                        continue
                    if index == _DELIVER:
                        after = self._deliver_whole(ch, data, pos + 11, end)
                        if after < 0:  # its content is not all here: the machine's
                            start = pos
                            pos = end + 1
                            continue
                        pos = after
                    else:
                        tag, bits = _QB.unpack_from(data, pos + 11)
                        channels[ch]._on_confirm(tag, bool(bits & 1), index == _ACK)
                        pos = end + 1
                    start = pos
                    continue
            pos = end + 1
        if n - pos >= 7 and _HEAD.unpack_from(data, pos)[2] + 8 > frame_max:
            pos = n  # too big a frame: the machine says so
        if start < pos:
            amqp.receive_data(data[start:pos])
        if pos < n:
            self._tail = data[pos:]

    def _deliver_whole(self, ch: int, data: bytes, p: int, end: int) -> int:
        """Dispatch the basic.deliver at ``p`` if its content header and body (one frame, or
        none) follow whole in ``data``; returns the offset after them, or -1."""
        n = len(data)
        h = end + 1
        if n - h < 20 or data[h] != 2:
            return -1
        _t, hch, hsize = _HEAD.unpack_from(data, h)
        hend = h + 7 + hsize
        if hend >= n or hch != ch or data[hend] != 0xCE or hsize < 14 or (
                _H.unpack_from(data, h + 7)[0] != 60):
            return -1
        bsize = _Q.unpack_from(data, h + 11)[0]
        b = hend + 1
        bend: int  # where the message ends
        if bsize:
            if n - b < 8 or data[b] != 3:
                return -1
            _t, bch, blen = _HEAD.unpack_from(data, b)
            bend = b + 7 + blen
            if blen != bsize or bend >= n or bch != ch or data[bend] != 0xCE:
                return -1
            body = data[b + 7 : bend]
        else:
            bend = hend
            body = b""
        ctag, tag, redelivered, exchange, rk = _deliver_fields(data, p)
        self._channels[ch]._dispatch(ctag, tag, redelivered, exchange, rk,
                                     data[h + 19 : hend], body)
        return bend + 1

    def _fast_deliver(self, number: int, payload: bytes, content: ContentAssembler) -> None:
        """basic.deliver parsed in place; its content header and bodies come next."""
        content.expect(_deliver_fields(payload, 4))

    def _fast_ack(self, number: int, payload: bytes, content: ContentAssembler) -> None:
        tag, bits = _QB.unpack_from(payload, 4)
        self._channels[number]._on_confirm(tag, bool(bits & 1), True)

    def _fast_nack(self, number: int, payload: bytes, content: ContentAssembler) -> None:
        tag, bits = _QB.unpack_from(payload, 4)
        self._channels[number]._on_confirm(tag, bool(bits & 1), False)

    # -- sending -------------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        self._flush_pending = True
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        data = self._wbuf
        parts = self._wparts
        if not data and not parts:
            return
        # a fresh buffer each time: the transport may keep a reference to the old one
        self._wbuf = bytearray()
        t = self._transport
        if parts:
            self._wparts = []
            if data:
                parts.append(data)
            if t is not None and not t.is_closing():
                t.writelines(parts)
                self._sent_flag = True
        elif t is not None and not t.is_closing():
            t.write(data)
            self._sent_flag = True

    def _send_large(self, body: bytes) -> None:
        """A large body goes out as it is, after what is buffered, not copied into it (the
        caller goes on with the new ``_wbuf``)."""
        self._wparts.append(self._wbuf)
        self._wparts.append(body)
        self._wbuf = bytearray()

    def _send(self, data: bytes) -> None:
        self._wbuf += data
        if not self._flush_pending:
            self._schedule_flush()

    def _send_method(self, channel: int, method: spec.Method) -> None:
        self._amqp.send(channel, method)

    async def drain(self) -> None:
        """Write what is buffered; wait while the socket or the server pushes back.

        Producers call this between batches. It always yields to the event loop once, so
        incoming frames (confirms, heartbeats) are processed even by a tight publish loop.
        """
        self._flush()
        if self._closed is not None:
            raise self._closed.with_traceback(None)
        if not (self._paused or self._blocked):
            await asyncio.sleep(0)
            return
        while (self._paused or self._blocked) and self._closed is None:
            if self._writable is None or self._writable.done():
                self._writable = self._loop.create_future()
            await self._writable
        if self._closed is not None:
            raise self._closed.with_traceback(None)

    def _wake_writers(self) -> None:
        w = self._writable
        if w is not None and not w.done():
            w.set_result(None)

    # -- heartbeats ----------------------------------------------------------------------
    def _start_heartbeat(self, interval: int) -> None:
        if interval > 0:
            self._hb_interval = interval / 2
            self._hb_handle = self._loop.call_later(self._hb_interval, self._hb_tick)

    def _hb_tick(self) -> None:
        if self._closed is not None:
            return
        if not self._sent_flag and self._transport is not None:
            # written directly: going through _flush would set _sent_flag and make the
            # next tick skip its heartbeat, halving the rate the server sees
            self._transport.write(frames.HEARTBEAT_FRAME)
        self._sent_flag = False
        self._hb_silent_ticks = 0 if self._recv_flag else self._hb_silent_ticks + 1
        self._recv_flag = False
        # two full heartbeat intervals without a byte from the server: it is gone
        if self._hb_silent_ticks >= 4:
            self._fail(ConnectionClosed(0, "missed heartbeats from the server"), code=0)
            return
        self._hb_handle = self._loop.call_later(self._hb_interval, self._hb_tick)

    # -- failure -------------------------------------------------------------------------
    def _fail(self, exc: Exception, code: int = 505) -> None:
        """Close the connection because of ``exc`` (a broken peer or a dead socket)."""
        if isinstance(exc, AMQPClosed):
            closed = exc
        else:
            name = REPLY_NAMES.get(code, "ERROR")
            closed = ConnectionClosed(code, f"{name} - {exc}")
        amqp = self._amqp
        if code and self._transport is not None and amqp.state not in (
                ConnectionState.CLOSING, ConnectionState.CLOSED):
            amqp.send(0, spec.ConnectionClose(code, closed.reply_text[:255], 0, 0))
            self._flush()
        amqp.transport_closed()
        self._set_closed(closed)
        if self._transport is not None:
            self._transport.close()

    def _callback_failed(self, exc: BaseException, what: str) -> None:
        context: dict[str, Any] = {"message": f"leveret client: {what} raised", "exception": exc}
        self._loop.call_exception_handler(context)


def _deliver_fields(buf: bytes, p: int) -> FastDeliver:
    """basic.deliver's fields, read in place from ``p`` (just after the method's ids):
    consumer tag (raw), delivery tag, redelivered, exchange, routing key."""
    tl = buf[p]
    ctag = buf[p + 1 : p + 1 + tl]
    p += 1 + tl
    tag, redelivered = _QB.unpack_from(buf, p)
    p += 9
    el = buf[p]
    exchange = buf[p + 1 : p + 1 + el].decode()
    p += 1 + el
    return ctag, tag, redelivered == 1, exchange, buf[p + 1 : p + 1 + buf[p]].decode()
