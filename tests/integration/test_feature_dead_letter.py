"""Dead-lettering (x-dead-letter-exchange, x-dead-letter-routing-key) and the x-death header,
as RabbitMQ 3.10 does them.

Pinned behaviour (checked against RabbitMQ 3.10.8):

* reasons: "rejected" (basic.reject / basic.nack with requeue=false), "expired" (message
  TTL), "maxlen" (x-max-length / x-max-length-bytes with drop-head, and the refused message
  of reject-publish-dlx); purge, delete and requeue-on-close never dead-letter;
* the dead-lettered message keeps its properties, except that ``expiration`` is removed
  (its value goes to x-death's original-expiration); it is published to the DLX with the
  x-dead-letter-routing-key if there is one (and then the CC header is removed), else with
  its original routing keys (routing key + CC; BCC was already stripped at publish);
* headers table, with these wire types:
    x-death                 A (array) of F (tables), the newest death first, each with
      count                 l (64-bit signed)
      reason, queue, exchange   S (long string)
      time                  T (timestamp, seconds)
      routing-keys          A of S
      original-expiration   S, only if the message had an expiration
    x-first-death-reason, x-first-death-queue, x-first-death-exchange   S, set once
  The headers table is re-sorted by key. A first x-death entry is laid out as count, reason,
  queue, time, exchange, routing-keys[, original-expiration]; entries written when an
  x-death array already exists are sorted by key;
* dying again in the same queue for the same reason increments that entry's count and moves
  it to the front; its time, exchange and routing-keys stay those of the first such death;
* cycles: a message dead-lettered (for any reason but "rejected") to a queue that is already
  in its x-death is dropped, unless the cycle contains a rejection;
* a DLX that does not exist: the message is dropped.
"""

from __future__ import annotations

import time

import pika
import pytest

from ._features import (
    get_all,
    get_eventually,
    get_one,
    property_flags,
    raw_get_headers,
    ready,
    settle,
    types_of,
    utc_now_seconds,
    values_of,
    wait_until,
)

EXPIRATION_BIT = 1 << 8


@pytest.fixture
def ch(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


@pytest.fixture
def dlx(ch, names):
    """A fanout DLX with one queue bound: (exchange, queue)."""
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    return x, q


@pytest.fixture
def raw_ch(raw):
    r = raw()
    r.open_channel(1)
    return r


def _pub(ch, exchange: str, rk: str, body: bytes, **props) -> None:
    ch.basic_publish(exchange, rk, body, pika.BasicProperties(**props))


def _reject(ch, q: str, requeue: bool = False, nack: bool = False) -> bytes:
    method, _props, body = get_one(ch, q, auto_ack=False)
    if nack:
        ch.basic_nack(method.delivery_tag, requeue=requeue)
    else:
        ch.basic_reject(method.delivery_tag, requeue=requeue)
    return body


def _deaths(props) -> list[tuple]:
    return [(d["queue"], d["reason"], d["count"]) for d in props.headers["x-death"]]


# -- what dead-letters ---------------------------------------------------------------------------


def test_reject_and_nack_without_requeue_dead_letter(ch, conn, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    for body in (b"rejected", b"nacked", b"requeued"):
        _pub(ch, "", q, body)
    _reject(ch, q)
    _reject(ch, q, nack=True)
    _reject(ch, q, requeue=True)
    settle(conn, 0.05)
    assert ready(conn, q) == 1
    got = []
    while (m := ch.basic_get(dlq, auto_ack=True))[0] is not None:
        got.append((m[2], m[1].headers["x-death"][0]["reason"]))
    assert got == [(b"rejected", "rejected"), (b"nacked", "rejected")]


def test_nack_multiple_dead_letters_in_order(ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    for i in range(3):
        _pub(ch, "", q, b"m%d" % i)
    tags = [get_one(ch, q, auto_ack=False)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=False)
    wait_until(lambda: ready(ch.connection, dlq) == 3, 3, what="three dead letters")
    assert get_all(ch, dlq) == [b"m0", b"m1", b"m2"]


def test_delivered_dead_letter_fields(ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    _pub(ch, "", q, b"m")
    _reject(ch, q)
    method, _props, _body = get_eventually(ch, dlq)
    assert (method.exchange, method.routing_key, method.redelivered) == (x, q, False)


def test_properties_are_kept_except_expiration(ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    _pub(ch, "", q, b"props", content_type="text/plain", content_encoding="gzip",
         delivery_mode=2, priority=3, correlation_id="c", reply_to="r", expiration="60000",
         message_id="id1", timestamp=1700000000, type="t", user_id="guest", app_id="a",
         headers={"mine": "kept"})
    _reject(ch, q)
    _method, p, body = get_eventually(ch, dlq)
    assert body == b"props"
    assert (p.content_type, p.content_encoding, p.delivery_mode, p.priority) == (
        "text/plain", "gzip", 2, 3)
    assert (p.correlation_id, p.reply_to, p.message_id, p.timestamp) == (
        "c", "r", "id1", 1700000000)
    assert (p.type, p.user_id, p.app_id) == ("t", "guest", "a")
    assert p.expiration is None
    assert p.headers["mine"] == "kept"
    assert p.headers["x-death"][0]["original-expiration"] == "60000"


def test_purge_delete_and_channel_close_do_not_dead_letter(conn, ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    _pub(ch, "", q, b"purged")
    ch.queue_purge(q)
    _pub(ch, "", q, b"unacked")
    other = conn.channel()
    get_one(other, q, auto_ack=False)
    other.close()  # requeued, not dead-lettered
    assert ready(conn, q) == 1
    ch.queue_delete(q)
    settle(conn, 0.1)
    assert ready(conn, dlq) == 0


def test_missing_dlx_drops_the_message(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": names.exchange()})
    _pub(ch, "", q, b"lost")
    _reject(ch, q)
    assert ready(conn, q) == 0
    assert ch.is_open


def test_routing_key_without_dlx_is_refused(conn, names):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-dead-letter-routing-key": "k"})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in "
        "vhost '/': routing_key_but_no_dlx_defined"
    )


def test_dead_letter_routing_key_of_the_wrong_type_is_refused(conn, names):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-dead-letter-exchange": "x",
                                                   "x-dead-letter-routing-key": 1})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in "
        "vhost '/': {unacceptable_type,signedint}"
    )


def test_dlx_of_the_wrong_type_is_refused(conn, names):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-dead-letter-exchange": 5})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in "
        f"queue '{q}' in vhost '/'"
    )


# -- the x-death header --------------------------------------------------------------------------


def test_x_death_header_types_and_values(ch, raw_ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    _pub(ch, "", q, b"m", expiration="60000", headers={"mine": 1})
    _reject(ch, q)
    before = utc_now_seconds()
    headers, payload, body = raw_get_headers(raw_ch, 1, dlq)
    assert body == b"m"
    assert not property_flags(payload) & EXPIRATION_BIT  # the expiration property is gone
    assert types_of(headers) == {
        "mine": "I",  # as pika sent it
        "x-death": ("A", [("F", {
            "count": "l",
            "reason": "S",
            "queue": "S",
            "time": "T",
            "exchange": "S",
            "routing-keys": ("A", ["S"]),
            "original-expiration": "S",
        })]),
        "x-first-death-exchange": "S",
        "x-first-death-queue": "S",
        "x-first-death-reason": "S",
    }
    values = values_of(headers)
    death = values["x-death"][0]
    assert abs(death.pop("time") - before) <= 5
    assert death == {
        "count": 1,
        "reason": "rejected",
        "queue": q,
        "exchange": "",
        "routing-keys": [q],
        "original-expiration": "60000",
    }
    assert values["x-first-death-reason"] == "rejected"
    assert values["x-first-death-queue"] == q
    assert values["x-first-death-exchange"] == ""


def test_x_death_key_order_on_the_wire(ch, raw_ch, names, dlx):
    # RabbitMQ re-sorts the headers table; a first x-death entry has a fixed layout, and
    # entries written into an existing x-death array are sorted by key.
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    _pub(ch, "", q, b"m", expiration="60000", headers={"z": 1, "a": 2})
    _reject(ch, q)
    headers, _payload, _body = raw_get_headers(raw_ch, 1, dlq)
    assert list(headers) == ["a", "x-death", "x-first-death-exchange", "x-first-death-queue",
                             "x-first-death-reason", "z"]
    (first,) = headers["x-death"][1]
    assert list(first[1]) == ["count", "reason", "queue", "time", "exchange", "routing-keys",
                              "original-expiration"]
    # two deaths: a -> b -> a
    a, b = names.queue(), names.queue()
    ch.queue_declare(a, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": b})
    ch.queue_declare(b, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": a})
    _pub(ch, "", a, b"m", expiration="60000", headers={"z": 1, "a": 2})
    _reject(ch, a)
    wait_until(lambda: ready(ch.connection, b) == 1, 3, what="the first dead letter")
    _reject(ch, b)
    wait_until(lambda: ready(ch.connection, a) == 1, 3, what="the second dead letter")
    headers, _payload, _body = raw_get_headers(raw_ch, 1, a)
    assert list(headers) == ["a", "x-death", "x-first-death-exchange", "x-first-death-queue",
                             "x-first-death-reason", "z"]
    newest, oldest = headers["x-death"][1]
    assert newest[1]["queue"] == ("S", b)
    assert list(newest[1]) == ["count", "exchange", "queue", "reason", "routing-keys", "time"]
    assert list(oldest[1]) == ["count", "reason", "queue", "time", "exchange", "routing-keys",
                               "original-expiration"]


def test_no_original_expiration_without_an_expiration(ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": x})
    _pub(ch, "", q, b"m")
    _method, props, _ = get_eventually(ch, dlq)
    death = props.headers["x-death"][0]
    assert death["reason"] == "expired"
    assert "original-expiration" not in death
    assert props.expiration is None


def test_expired_per_message_has_original_expiration(ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 60000, "x-dead-letter-exchange": x})
    _pub(ch, "", q, b"m", expiration="30", headers={"h": "v"})
    _method, props, _ = get_eventually(ch, dlq)
    death = props.headers["x-death"][0]
    assert (death["reason"], death["original-expiration"], death["count"]) == ("expired", "30", 1)
    assert props.expiration is None
    assert props.headers["h"] == "v"
    assert props.headers["x-first-death-reason"] == "expired"


def test_time_is_a_timestamp_of_now(ch, raw_ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    _pub(ch, "", q, b"m")
    t0 = utc_now_seconds()
    _reject(ch, q)
    headers, _payload, _ = raw_get_headers(raw_ch, 1, dlq)
    tag, when = headers["x-death"][1][0][1]["time"]
    assert tag == "T"
    assert t0 - 2 <= when <= utc_now_seconds() + 2


# -- routing keys --------------------------------------------------------------------------------


def test_original_routing_keys_and_cc(ch, names, dlx):
    x, dlq = dlx
    src, q = names.exchange(), names.queue()
    ch.exchange_declare(src, "direct")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    ch.queue_bind(q, src, "rk1")
    _pub(ch, src, "rk1", b"m", headers={"CC": ["cc1"], "BCC": ["bcc1"]})
    _method, props, _ = get_one(ch, q, auto_ack=False)
    assert props.headers == {"CC": ["cc1"]}  # BCC never reaches a queue
    ch.basic_reject(_method.delivery_tag, requeue=False)
    method, props, _ = get_eventually(ch, dlq)
    assert (method.exchange, method.routing_key) == (x, "rk1")
    assert props.headers["CC"] == ["cc1"]
    death = props.headers["x-death"][0]
    assert (death["exchange"], death["routing-keys"]) == (src, ["rk1", "cc1"])
    assert props.headers["x-first-death-exchange"] == src


def test_dlx_routes_by_the_original_routing_key_and_cc(ch, names):
    dlx, by_cc, by_rk = names.exchange(), names.queue(), names.queue()
    ch.exchange_declare(dlx, "direct")
    for queue, key in ((by_cc, "cc-key"), (by_rk, "main-key")):
        ch.queue_declare(queue)
        ch.queue_bind(queue, dlx, key)
    src, q = names.exchange(), names.queue()
    ch.exchange_declare(src, "direct")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
    ch.queue_bind(q, src, "main-key")
    _pub(ch, src, "main-key", b"m", headers={"CC": ["cc-key"]})
    _reject(ch, q)
    assert get_eventually(ch, by_cc)[2] == b"m"
    assert get_eventually(ch, by_rk)[2] == b"m"


def test_dead_letter_routing_key_replaces_the_keys_and_drops_cc(ch, names, dlx):
    x, dlq = dlx
    src, q = names.exchange(), names.queue()
    ch.exchange_declare(src, "direct")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x,
                                   "x-dead-letter-routing-key": "newrk"})
    ch.queue_bind(q, src, "rk2")
    _pub(ch, src, "rk2", b"m", headers={"CC": ["cc2"], "keep": "v"})
    _reject(ch, q, nack=True)
    method, props, _ = get_eventually(ch, dlq)
    assert (method.exchange, method.routing_key) == (x, "newrk")
    assert "CC" not in props.headers
    assert props.headers["keep"] == "v"
    assert props.headers["x-death"][0]["routing-keys"] == ["rk2", "cc2"]


def test_dead_letter_through_the_default_exchange(ch, names):
    q, target = names.queue(), names.queue()
    ch.queue_declare(target)
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": target})
    _pub(ch, "", q, b"m")
    _reject(ch, q)
    method, props, _ = get_eventually(ch, target)
    assert (method.exchange, method.routing_key) == ("", target)
    assert props.headers["x-death"][0]["exchange"] == ""


# -- expired messages -----------------------------------------------------------------------------


def test_expired_messages_dead_letter_in_order(ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": x})
    for i in range(4):
        _pub(ch, "", q, b"m%d" % i)
    wait_until(lambda: ready(ch.connection, dlq) == 4, 3, what="four dead letters")
    assert get_all(ch, dlq) == [b"m0", b"m1", b"m2", b"m3"]


def test_ttl_dead_letter_and_requeue_ordering(ch, conn, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 100, "x-dead-letter-exchange": x})
    for body in (b"m1", b"m2", b"m3"):
        _pub(ch, "", q, body)
    method, _props, body = get_one(ch, q, auto_ack=False)
    assert (body, method.message_count) == (b"m1", 2)
    # m2 and m3 expire in the queue; m1 is unacked and does not
    wait_until(lambda: ready(conn, dlq) == 2, 3, what="m2 and m3 to be dead-lettered")
    assert ready(conn, q) == 0
    ch.basic_reject(method.delivery_tag, requeue=True)  # back, already expired: dead-letters
    wait_until(lambda: ready(conn, dlq) == 3, 3, what="m1 to be dead-lettered")
    got = []
    while (m := ch.basic_get(dlq, auto_ack=True))[0] is not None:
        got.append((m[2], _deaths(m[1])))
    assert got == [(b"m2", [(q, "expired", 1)]), (b"m3", [(q, "expired", 1)]),
                   (b"m1", [(q, "expired", 1)])]


def test_requeued_before_expiry_dead_letters_after_the_others(ch, conn, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    _pub(ch, "", q, b"a", expiration="100")
    _pub(ch, "", q, b"b", expiration="5000")
    _pub(ch, "", q, b"c")
    method, _props, _ = get_one(ch, q, auto_ack=False)
    time.sleep(0.2)
    assert ready(conn, dlq) == 0  # a is unacked: it cannot expire yet
    ch.basic_nack(method.delivery_tag, requeue=True)
    _m, props, body = get_eventually(ch, dlq)
    assert body == b"a"
    assert props.headers["x-death"][0]["original-expiration"] == "100"
    assert get_all(ch, q) == [b"b", b"c"]


def test_expired_behind_a_live_message_dead_letters_at_the_head(ch, conn, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    _pub(ch, "", q, b"live", expiration="60000")
    _pub(ch, "", q, b"dies", expiration="20")
    time.sleep(0.2)
    assert ready(conn, dlq) == 0
    assert get_one(ch, q)[2] == b"live"
    assert get_eventually(ch, dlq)[2] == b"dies"


# -- length limits ---------------------------------------------------------------------------------


def test_drop_head_dead_letters_the_oldest(ch, conn, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-dead-letter-exchange": x})
    for i in range(1, 5):
        _pub(ch, "", q, b"m%d" % i)
    assert get_all(ch, q) == [b"m3", b"m4"]
    wait_until(lambda: ready(conn, dlq) == 2, 3, what="two dead letters")
    got = []
    while (m := ch.basic_get(dlq, auto_ack=True))[0] is not None:
        got.append((m[2], _deaths(m[1]), m[0].routing_key))
    assert got == [(b"m1", [(q, "maxlen", 1)], q), (b"m2", [(q, "maxlen", 1)], q)]


def test_reject_publish_dlx_nacks_and_dead_letters(conn, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                   "x-dead-letter-exchange": x})
    _pub(ch, "", q, b"kept")
    with pytest.raises(pika.exceptions.NackError):
        _pub(ch, "", q, b"refused")
    assert get_all(ch, q) == [b"kept"]
    _method, props, body = get_eventually(ch, dlq)
    assert body == b"refused"
    assert _deaths(props) == [(q, "maxlen", 1)]


def test_reject_publish_does_not_dead_letter(conn, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish",
                                   "x-dead-letter-exchange": x})
    _pub(ch, "", q, b"kept")
    with pytest.raises(pika.exceptions.NackError):
        _pub(ch, "", q, b"refused")
    settle(conn, 0.1)
    assert ready(conn, dlq) == 0


def test_requeue_over_the_limit_dead_letters_the_requeued_head(ch, conn, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-dead-letter-exchange": x})
    _pub(ch, "", q, b"f1")
    method, _props, _ = get_one(ch, q, auto_ack=False)
    _pub(ch, "", q, b"f2")
    ch.basic_nack(method.delivery_tag, requeue=True)
    _m, props, body = get_eventually(ch, dlq)
    assert body == b"f1"
    assert _deaths(props) == [(q, "maxlen", 1)]
    assert get_all(ch, q) == [b"f2"]


def test_max_length_bytes_dead_letters_with_maxlen(ch, names, dlx):
    x, dlq = dlx
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 5, "x-dead-letter-exchange": x})
    _pub(ch, "", q, b"abc")
    _pub(ch, "", q, b"def")
    _m, props, body = get_eventually(ch, dlq)
    assert body == b"abc"
    assert props.headers["x-death"][0]["reason"] == "maxlen"


# -- dying again, cycles ---------------------------------------------------------------------------


def test_dying_again_increments_the_count_and_keeps_the_first_details(ch, names, dlx):
    x, dlq = dlx
    src, q = names.exchange(), names.queue()
    ch.exchange_declare(src, "direct")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    ch.queue_bind(q, src, "first")
    ch.queue_bind(q, src, "second")
    _pub(ch, src, "first", b"m")
    _reject(ch, q)
    _m, props, _ = get_eventually(ch, dlq)
    first = props.headers["x-death"][0]
    time.sleep(1.1)  # x-death time has a resolution of one second
    # the same message comes back another way and dies again in the same queue
    ch.basic_publish(src, "second", b"m", pika.BasicProperties(headers=props.headers))
    _reject(ch, q)
    method, props, _ = get_eventually(ch, dlq)
    assert method.routing_key == "second"
    (again,) = props.headers["x-death"]
    assert again["count"] == 2
    assert (again["time"], again["exchange"], again["routing-keys"]) == (
        first["time"], src, ["first"])  # not updated
    assert props.headers["x-first-death-reason"] == "rejected"


def test_reject_cycle_keeps_going_and_counts(ch, names):
    loop = names.queue()
    ch.queue_declare(loop, arguments={"x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": loop})
    _pub(ch, "", loop, b"round")
    for _ in range(3):
        wait_until(lambda: ready(ch.connection, loop) == 1, 3, what="the message back")
        _reject(ch, loop)
    _m, props, body = get_eventually(ch, loop)
    assert body == b"round"
    assert _deaths(props) == [(loop, "rejected", 3)]


def test_two_queue_reject_cycle_orders_the_deaths(ch, names):
    q1, q2 = names.queue(), names.queue()
    ch.queue_declare(q2, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q1})
    ch.queue_declare(q1, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q2})
    _pub(ch, "", q1, b"bounce")
    for q in (q1, q2, q1):
        wait_until(lambda q=q: ready(ch.connection, q) == 1, 3, what=f"the message in {q}")
        _reject(ch, q)
    _m, props, _ = get_eventually(ch, q2)
    assert _deaths(props) == [(q1, "rejected", 2), (q2, "rejected", 1)]
    assert props.headers["x-first-death-queue"] == q1


def test_expiry_self_cycle_is_dropped(ch, conn, names):
    loop = names.queue()
    ch.queue_declare(loop, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": loop})
    _pub(ch, "", loop, b"gone")
    time.sleep(0.3)
    assert ready(conn, loop) == 0


def test_expiry_cycle_through_two_queues_is_dropped(ch, conn, names):
    q1, q2 = names.queue(), names.queue()
    for this, other in ((q1, q2), (q2, q1)):
        ch.queue_declare(this, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                          "x-dead-letter-routing-key": other})
    _pub(ch, "", q1, b"gone")
    time.sleep(0.3)
    assert (ready(conn, q1), ready(conn, q2)) == (0, 0)


def test_cycle_with_a_rejection_in_it_keeps_going(ch, conn, names):
    q3, q4 = names.queue(), names.queue()
    ch.queue_declare(q3, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": q4})
    ch.queue_declare(q4, arguments={"x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": q3})
    _pub(ch, "", q3, b"cycling")
    wait_until(lambda: ready(conn, q4) == 1, 3, what="the message in q4")
    method, props, _ = get_one(ch, q4, auto_ack=False)
    assert _deaths(props) == [(q3, "expired", 1)]
    ch.basic_reject(method.delivery_tag, requeue=False)  # to q3, expires, back to q4
    _m, props, body = get_eventually(ch, q4)
    assert body == b"cycling"
    assert _deaths(props) == [(q3, "expired", 2), (q4, "rejected", 1)]
