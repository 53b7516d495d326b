"""Exchanges: the predeclared ones, declare flags, delete, exchange-to-exchange bindings,
alternate exchanges, auto-delete."""

from __future__ import annotations

import itertools

import pika
import pytest

from ._util import declare_temp_queue, drain


def _gone(conn, exchange: str) -> bool:
    ch = conn.channel()
    try:
        ch.exchange_declare(exchange, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404
        return True
    ch.close()
    return False


# -- predeclared ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.topic", "topic"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
    ],
)
def test_predeclared_exchanges(channel, name, kind):
    channel.exchange_declare(name, passive=True)
    # redeclaring with the same (durable) properties is allowed
    channel.exchange_declare(name, kind, durable=True)


def test_default_exchange_routes_by_queue_name(channel):
    q = declare_temp_queue(channel)
    channel.basic_publish("", q, b"hello")
    channel.basic_publish("", q + ".other", b"lost")
    assert drain(channel, q) == [b"hello"]


def test_default_exchange_cannot_be_declared_or_deleted(conn):
    for op in (
        lambda ch: ch.exchange_declare("", "direct"),
        lambda ch: ch.exchange_declare("", "direct", passive=True),
        lambda ch: ch.exchange_delete(""),
    ):
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            op(ch)
        assert ei.value.reply_code == 403
        assert (
            ei.value.reply_text
            == "ACCESS_REFUSED - operation not permitted on the default exchange"
        )


def test_amq_prefixed_passive_declare_of_missing_exchange(channel):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.exchange_declare("amq.no-such-exchange", passive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no exchange 'amq.no-such-exchange' in vhost '/'"


# -- declare ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["direct", "fanout", "topic", "headers"])
def test_declare_each_type(channel, names, kind):
    x = names.exchange()
    assert channel.exchange_declare(x, kind).method.NAME == "Exchange.DeclareOk"
    channel.exchange_declare(x, passive=True)
    channel.exchange_declare(x, kind)  # idempotent
    # passive ignores the other fields
    channel.exchange_declare(
        x, "fanout" if kind != "fanout" else "direct", passive=True, durable=True
    )


def test_declare_durable(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "direct", durable=True)
    channel.exchange_declare(x, "direct", durable=True)


def test_redeclare_mismatch_auto_delete_and_internal(conn, names):
    x = names.exchange()
    conn.channel().exchange_declare(x, "direct")
    for kwargs, arg, received, current in [
        ({"auto_delete": True}, "auto_delete", "true", "false"),
        ({"internal": True}, "internal", "true", "false"),
    ]:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.exchange_declare(x, "direct", **kwargs)
        assert ei.value.reply_code == 406
        assert ei.value.reply_text == (
            f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{x}' in vhost '/': "
            f"received '{received}' but current is '{current}'"
        )


def test_declare_nowait(channel, names):
    x = names.exchange()
    channel._impl.exchange_declare(x, "fanout", callback=None)  # nowait
    channel.exchange_declare(x, passive=True)


def test_internal_exchange_routes_from_other_exchanges(channel, names):
    front = names.exchange()
    internal = names.exchange()
    channel.exchange_declare(front, "fanout")
    channel.exchange_declare(internal, "fanout", internal=True)
    channel.exchange_bind(internal, front)
    q = declare_temp_queue(channel)
    channel.queue_bind(q, internal)
    channel.basic_publish(front, "", b"via-front")
    assert drain(channel, q) == [b"via-front"]


def test_publish_to_internal_exchange_refused(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "direct", internal=True)
    channel.basic_publish(x, "k", b"no")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 403
    assert (
        ei.value.reply_text
        == f"ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'"
    )


# -- delete ----------------------------------------------------------------------------------------


def test_delete(conn, names):
    ch = conn.channel()
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    assert ch.exchange_delete(x).method.NAME == "Exchange.DeleteOk"
    assert _gone(conn, x)


def test_delete_missing_exchange_is_ok(channel, names):
    assert channel.exchange_delete(names.exchange()).method.NAME == "Exchange.DeleteOk"


def test_delete_if_unused(conn, names):
    ch = conn.channel()
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    q = declare_temp_queue(ch)
    ch.queue_bind(q, x, "k")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_delete(x, if_unused=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == f"PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use"
    ch = conn.channel()
    ch.queue_unbind(q, x, "k")
    ch.exchange_delete(x, if_unused=True)
    assert _gone(conn, x)


def test_delete_if_unused_counts_only_bindings_from_the_exchange(conn, names):
    """An exchange that is only the destination of a binding is not 'in use'."""
    ch = conn.channel()
    src, dst = names.exchange(), names.exchange()
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    ch.exchange_delete(dst, if_unused=True)
    assert _gone(conn, dst)


def test_delete_removes_its_bindings(conn, names):
    ch = conn.channel()
    x = names.exchange()
    ch.exchange_declare(x, "fanout")
    q = declare_temp_queue(ch)
    ch.queue_bind(q, x)
    ch.exchange_delete(x)
    ch.exchange_declare(x, "fanout")  # same name again: no bindings left
    ch.basic_publish(x, "", b"m")
    assert drain(ch, q) == []


def test_deleting_a_queue_removes_its_bindings(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "fanout", auto_delete=True)
    q = channel.queue_declare(names.queue()).method.queue
    keep = declare_temp_queue(channel)
    channel.queue_bind(q, x)
    channel.queue_bind(keep, x)
    channel.queue_delete(q)
    channel.exchange_declare(x, passive=True)  # still bound to keep
    channel.queue_declare(q)
    channel.basic_publish(x, "", b"m")
    assert drain(channel, q) == []
    assert drain(channel, keep) == [b"m"]


# -- auto-delete ---------------------------------------------------------------------------------


def test_auto_delete_exchange_goes_with_its_last_queue_binding(conn, names):
    ch = conn.channel()
    x = names.exchange()
    ch.exchange_declare(x, "direct", auto_delete=True)
    q1, q2 = declare_temp_queue(ch), declare_temp_queue(ch)
    ch.queue_bind(q1, x, "a")
    ch.queue_bind(q2, x, "b")
    ch.queue_unbind(q1, x, "a")
    assert not _gone(conn, x)
    ch.queue_unbind(q2, x, "b")
    assert _gone(conn, x)


def test_auto_delete_exchange_goes_when_bound_queue_is_deleted(conn, names):
    ch = conn.channel()
    x = names.exchange()
    ch.exchange_declare(x, "fanout", auto_delete=True)
    q = declare_temp_queue(ch)
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    assert _gone(conn, x)


def test_auto_delete_exchange_never_bound_stays(conn, names):
    ch = conn.channel()
    x = names.exchange()
    ch.exchange_declare(x, "fanout", auto_delete=True)
    assert not _gone(conn, x)


def test_auto_delete_exchange_goes_with_its_last_exchange_binding(conn, names):
    ch = conn.channel()
    src, dst = names.exchange(), names.exchange()
    ch.exchange_declare(src, "fanout", auto_delete=True)
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    ch.exchange_unbind(dst, src)
    assert _gone(conn, src)
    assert not _gone(conn, dst)


# -- exchange-to-exchange bindings -----------------------------------------------------------------


def test_exchange_to_exchange_binding(channel, names):
    src, dst = names.exchange(), names.exchange()
    channel.exchange_declare(src, "direct")
    channel.exchange_declare(dst, "topic")
    channel.exchange_bind(dst, src, "a.b")
    q = declare_temp_queue(channel)
    channel.queue_bind(q, dst, "a.*")
    channel.basic_publish(src, "a.b", b"through")
    channel.basic_publish(src, "a.c", b"not-bound-at-src")
    channel.basic_publish(dst, "a.c", b"direct-to-dst")
    assert drain(channel, q) == [b"through", b"direct-to-dst"]
    channel.exchange_unbind(dst, src, "a.b")
    channel.basic_publish(src, "a.b", b"after-unbind")
    assert drain(channel, q) == []


def test_exchange_binding_chain(channel, names):
    xs = [names.exchange() for _ in range(4)]
    for x in xs:
        channel.exchange_declare(x, "fanout")
    for a, b in itertools.pairwise(xs):
        channel.exchange_bind(b, a)
    q = declare_temp_queue(channel)
    channel.queue_bind(q, xs[-1])
    channel.basic_publish(xs[0], "", b"deep")
    assert drain(channel, q) == [b"deep"]


def test_one_copy_per_queue_over_several_paths_and_cycles(channel, names):
    a, b, c = names.exchange(), names.exchange(), names.exchange()
    for x in (a, b, c):
        channel.exchange_declare(x, "fanout")
    channel.exchange_bind(b, a)
    channel.exchange_bind(c, a)
    channel.exchange_bind(c, b)
    channel.exchange_bind(a, c)  # a cycle
    q = declare_temp_queue(channel)
    channel.queue_bind(q, a)
    channel.queue_bind(q, b)
    channel.queue_bind(q, c)
    channel.basic_publish(a, "", b"once")
    assert drain(channel, q) == [b"once"]


def test_exchange_bind_to_itself(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "fanout")
    channel.exchange_bind(x, x)
    q = declare_temp_queue(channel)
    channel.queue_bind(q, x)
    channel.basic_publish(x, "", b"self")
    assert drain(channel, q) == [b"self"]


def test_exchange_bind_missing(conn, names):
    existing = names.exchange()
    conn.channel().exchange_declare(existing, "fanout")
    for dst, src in [(names.exchange(), existing), (existing, names.exchange())]:
        missing = dst if dst != existing else src
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.exchange_bind(dst, src)
        assert ei.value.reply_code == 404
        assert ei.value.reply_text == f"NOT_FOUND - no exchange '{missing}' in vhost '/'"


def test_exchange_unbind_missing_binding_is_ok(channel, names):
    a, b = names.exchange(), names.exchange()
    channel.exchange_declare(a, "fanout")
    channel.exchange_declare(b, "fanout")
    assert channel.exchange_unbind(b, a, "nothing").method.NAME == "Exchange.UnbindOk"


# -- alternate exchange ----------------------------------------------------------------------------


def test_alternate_exchange(channel, names):
    main, alt = names.exchange(), names.exchange()
    channel.exchange_declare(alt, "fanout")
    channel.exchange_declare(main, "direct", arguments={"alternate-exchange": alt})
    routed, unrouted = declare_temp_queue(channel), declare_temp_queue(channel)
    channel.queue_bind(routed, main, "known")
    channel.queue_bind(unrouted, alt)
    channel.basic_publish(main, "known", b"1")
    channel.basic_publish(main, "unknown", b"2")
    assert drain(channel, routed) == [b"1"]
    assert drain(channel, unrouted) == [b"2"]


def test_alternate_exchange_with_mandatory_is_not_returned(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    main, alt = names.exchange(), names.exchange()
    ch.exchange_declare(alt, "fanout")
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": alt})
    q = declare_temp_queue(ch)
    ch.queue_bind(q, alt)
    ch.basic_publish(main, "unknown", b"m", mandatory=True)  # no UnroutableError
    assert drain(ch, q) == [b"m"]


def test_alternate_exchange_that_routes_nowhere_returns_mandatory(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    main, alt = names.exchange(), names.exchange()
    ch.exchange_declare(alt, "fanout")
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": alt})
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(main, "unknown", b"m", mandatory=True)


def test_missing_alternate_exchange_drops(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    main = names.exchange()
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": names.exchange()})
    ch.basic_publish(main, "unknown", b"dropped")
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(main, "unknown", b"returned", mandatory=True)


def test_alternate_exchange_chain(channel, names):
    a, b, c = names.exchange(), names.exchange(), names.exchange()
    channel.exchange_declare(c, "fanout")
    channel.exchange_declare(b, "direct", arguments={"alternate-exchange": c})
    channel.exchange_declare(a, "direct", arguments={"alternate-exchange": b})
    q = declare_temp_queue(channel)
    channel.queue_bind(q, c)
    channel.basic_publish(a, "x", b"fell-through-twice")
    assert drain(channel, q) == [b"fell-through-twice"]


def test_alternate_exchange_cycle_does_not_loop(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    a, b = names.exchange(), names.exchange()
    ch.exchange_declare(a, "direct", arguments={"alternate-exchange": b})
    ch.exchange_declare(b, "direct", arguments={"alternate-exchange": a})
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(a, "x", b"m", mandatory=True)
    assert conn.is_open
