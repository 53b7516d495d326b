"""The server-side history behind ``samples`` (management/history.py): the ring buffers,
the ``lengths_age``/``msg_rates_age``/``data_rates_age`` ranges over HTTP, their shape
against the reference RabbitMQ, and what the history costs per queue."""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

import pika
import pytest
from mgmt_helpers import Api, q, unique

from leveret.broker.node import Node
from leveret.management.history import Range, Series
from leveret.management.rates import RateSampler
from leveret.runtime.threaded import BrokerThread

RANGE_60 = "lengths_age=60&lengths_incr=5&msg_rates_age=60&msg_rates_incr=5"


def test_series_keeps_samples_at_both_resolutions() -> None:
    now = 1_000_000.0
    series = Series(("a", "b"), "basic", now, (0, 7))
    for i in range(1, 200):  # every 5 s for 995 s: a grows by 2 a sample, b stays
        series.record(now + 5 * i, (2 * i, 7))
    end = now + 5 * 199
    recent = series.at(Range(60, 5).timestamps(end))
    assert [row[0] for row in recent] == [2 * i for i in range(199, 186, -1)]
    assert all(row[1] == 7 for row in recent)
    # 15 minutes back at 60 s: past the 5 s ring (605 s), so from the minute ring, which
    # holds each minute's last sample
    hour = Range(900, 60).timestamps(end)
    rows = series.at(hour)
    assert len(rows) == 16
    for t, row in zip(hour, rows, strict=True):
        last_in_minute = min(end, t + 55)
        assert row[0] == 2 * int((last_in_minute - now) / 5)
    # before the object was first seen: zeros, as RabbitMQ pads
    assert series.at([int(now) - 3600]) == [(0, 0)]


def test_idle_series_cost_nothing_and_give_buffers_back() -> None:
    now = 1_000_000.0
    idle = Series(("a",), "basic", now, (5,))
    for i in range(1, 100):
        idle.record(now + 5 * i, (5,))
    assert idle.nbytes() == 0
    assert idle.at(Range(60, 5).timestamps(now + 495)) == [(5,)] * 13
    busy = Series(("a",), "basic", now, (0,))
    busy.record(now + 5, (1,))
    assert busy.nbytes() > 0
    for i in range(2, 800):  # unchanged for over an hour: the rings are released
        busy.record(now + 5 * i, (1,))
    assert busy.nbytes() == 0
    assert busy.at([int(now) + 5 * 799]) == [(1,)]


def test_series_rebases_values_past_32_bits() -> None:
    now = 1_000_000.0
    big = 2 ** 40
    series = Series(("n",), "basic", now, (0,))
    series.record(now + 5, (10,))
    series.record(now + 10, (big,))
    series.record(now + 15, (big + 5,))
    rows = series.at(Range(15, 5).timestamps(now + 15))
    # the oldest values cannot share a 32-bit window with 2**40: dropped, the oldest kept
    # one stands in for them
    assert [r[0] for r in rows][:2] == [big + 5, big]


def test_history_cost_per_queue_with_10000_queues() -> None:
    node = Node()
    vhost = node.vhosts["/"]
    for i in range(10_000):
        vhost.declare_queue(f"q{i}", False, False, False, False, {}, None)
    now = [1_000_000.0]
    sampler = RateSampler(node, wall_clock=lambda: now[0])
    sampler.sample()
    now[0] += 5
    sampler.sample()
    assert sampler.history_bytes() < 10_000  # idle queues: no buffers at all
    for i, queue in enumerate(vhost.queues.values()):
        if i % 10 == 0:
            queue.counters.publish += 1  # 1,000 queues change
    now[0] += 5
    sampler.sample()
    per_queue = sampler.history_bytes() / 1000
    assert per_queue < 9_000, per_queue  # 182 slots x (10 values + slot) x 4 bytes


def _fake_clock(broker: BrokerThread) -> list[float]:
    """A wall clock for the sampler ahead of the real one (so objects first seen under the
    real clock count as older), aligned to 5 s."""
    now = [float(int(time.time() // 5) * 5 + 10_000)]
    sampler = broker.broker.management.sampler

    def install() -> None:
        sampler.wall_clock = lambda: now[0]
    broker.call(install)
    return now


def test_ranges_over_http() -> None:
    with BrokerThread(management_port=0) as broker:
        _ranges_over_http(Api(broker.broker.management_url, broker.port), broker)


def _ranges_over_http(api: Api, broker: BrokerThread) -> None:
    sampler = broker.broker.management.sampler
    now = _fake_clock(broker)
    name = unique("hist")
    api.ok("PUT", f"/api/queues/%2F/{name}", {})
    broker.call(sampler.sample)
    publish = {"properties": {}, "routing_key": name, "payload": "x",
               "payload_encoding": "string"}
    for _ in range(14):
        now[0] += 5
        for _ in range(3):
            api.ok("POST", "/api/exchanges/%2F/amq.default/publish", publish)
        broker.call(sampler.sample)
    queue = api.get(f"/api/queues/%2F/{name}?{RANGE_60}").json
    details = queue["messages_details"]
    assert list(details) == ["rate", "samples", "avg_rate", "avg"]
    samples = details["samples"]
    assert [s["sample"] for s in samples] == [42 - 3 * k for k in range(13)]
    assert [s["timestamp"] for s in samples] == [int(now[0] - 5 * k) * 1000
                                                 for k in range(13)]
    assert details["avg_rate"] == pytest.approx((42 - 6) / 60)
    assert details["avg"] == pytest.approx(sum(s["sample"] for s in samples) / 13)
    publish_details = queue["message_stats"]["publish_details"]
    assert publish_details["samples"][0] == {"sample": 42, "timestamp": int(now[0]) * 1000}
    # without the parameters: the rate only
    plain = api.get(f"/api/queues/%2F/{name}").json
    assert list(plain["messages_details"]) == ["rate"]
    # only the family asked for gets samples
    lengths_only = api.get(f"/api/queues/%2F/{name}?lengths_age=10&lengths_incr=5").json
    assert len(lengths_only["messages_details"]["samples"]) == 3
    assert list(lengths_only["message_stats"]["publish_details"]) == ["rate"]
    # listings, exchanges, the overview, vhosts
    listed = api.get(f"/api/queues/%2F?{RANGE_60}").json
    mine = next(x for x in listed if x["name"] == name)
    assert len(mine["messages_details"]["samples"]) == 13
    exchange = api.get("/api/exchanges/%2F/amq.default?msg_rates_age=10&msg_rates_incr=5")
    stats = exchange.json["message_stats"]
    assert [s["sample"] for s in stats["publish_in_details"]["samples"]] == [42, 39, 36]
    assert [s["sample"] for s in stats["publish_out_details"]["samples"]] == [42, 39, 36]
    overview = api.get(f"/api/overview?{RANGE_60}").json
    assert overview["queue_totals"]["messages_details"]["samples"][0]["sample"] == 42
    assert overview["message_stats"]["publish_details"]["samples"][0]["sample"] == 42
    vhost = api.get(f"/api/vhosts/%2F?{RANGE_60}").json
    assert vhost["messages_details"]["samples"][0]["sample"] == 42
    # one increment: samples, no averages (RabbitMQ's shape)
    one = api.get(f"/api/queues/%2F/{name}?lengths_age=5&lengths_incr=10").json
    assert list(one["messages_details"]) == ["rate", "samples"]
    # RabbitMQ's refusals, and a non-integer ignored
    for bad, text in (("lengths_age=0&lengths_incr=5", "age 0, incr 5"),
                      ("msg_rates_age=60&msg_rates_incr=0", "age 60, incr 0"),
                      ("data_rates_age=2505&data_rates_incr=5", "age 2505, incr 5")):
        reply = api.get(f"/api/overview?{bad}")
        assert reply.status == 400
        assert reply.json == {"error": "bad_request",
                              "reason": f"Invalid range parameters: {text}"}
    assert api.get("/api/overview?lengths_age=x&lengths_incr=5").status == 200
    assert api.get("/api/overview?lengths_age=2500&lengths_incr=5").status == 200


def test_connection_data_rates(api: Api, broker: BrokerThread) -> None:
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", api.amqp_port))
    try:
        broker.call(broker.broker.management.sampler.sample)
        conns = api.get("/api/connections?data_rates_age=10&data_rates_incr=5").json
        assert conns and all(len(c["recv_oct_details"]["samples"]) == 3 for c in conns)
    finally:
        conn.close()


def _details_shape(value: Any) -> Any:
    """The keys of every ``*_details`` object, and its sample count and spacing."""
    if isinstance(value, dict):
        shape = {}
        for key, inner in value.items():
            if key.endswith("_details") and isinstance(inner, dict) and "rate" in inner:
                samples = inner.get("samples", [])
                steps = {a["timestamp"] - b["timestamp"] for a, b in pairwise(samples)}
                shape[key] = (sorted(inner), len(samples), sorted(steps))
            elif isinstance(inner, dict):
                shape[key] = _details_shape(inner)
        return {k: v for k, v in shape.items() if v}
    return None


def test_range_shapes_match_rabbitmq(api: Api, broker: BrokerThread, reference: Api
                                     ) -> None:
    vhost = unique("hist")
    v = q(vhost)
    # The connections stay open until RabbitMQ shows the queue's message_stats: a channel
    # closed before its first statistics emission takes its per-queue figures with it.
    conns: list[pika.BlockingConnection] = []
    try:
        for side, port in ((api, api.amqp_port), (reference, 5673)):
            side.ok("PUT", f"/api/vhosts/{v}", {})
            side.ok("PUT", f"/api/permissions/{v}/guest",
                    {"configure": ".*", "write": ".*", "read": ".*"})
            conn = pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", port, vhost, pika.PlainCredentials("guest", "guest")))
            ch = conn.channel()
            ch.queue_declare("h")
            for _ in range(3):
                ch.basic_publish("", "h", b"x")
            ch.basic_get("h", auto_ack=True)
            conns.append(conn)
        broker.call(broker.broker.management.sampler.sample)
        deadline = time.monotonic() + 20
        path = f"/api/queues/{v}/h?{RANGE_60}"
        theirs = reference.get(path).json
        while not {"message_stats", "messages_details"} <= theirs.keys() \
                and time.monotonic() < deadline:
            time.sleep(0.5)
            theirs = reference.get(path).json
        for conn in conns:
            conn.close()
        conns.clear()
        ours = _details_shape(api.get(path).json)
        theirs = _details_shape(theirs)
        theirs.pop("reductions_details", None)  # Erlang VM (docs/management.md)
        # RabbitMQ's delivery statistics arrive later than its publish ones: compare those
        # it has
        assert {k: v for k, v in ours.items() if k != "message_stats"} == \
            {k: v for k, v in theirs.items() if k != "message_stats"}
        assert "publish_details" in theirs["message_stats"]
        for name, shape in theirs["message_stats"].items():
            assert ours["message_stats"][name] == shape, name
        ov_path = f"/api/overview?{RANGE_60}"
        ours_ov = _details_shape(api.get(ov_path).json)
        theirs_ov = _details_shape(reference.get(ov_path).json)
        theirs_ov.pop("churn_rates", None)  # not kept by leveret (docs/management.md)
        for key in ("message_stats", "queue_totals"):
            for name in set(theirs_ov[key]) - {"disk_reads_details", "disk_writes_details"}:
                assert ours_ov[key][name] == theirs_ov[key][name], (key, name)
    finally:
        for conn in conns:
            conn.close()
        for side in (api, reference):
            side.delete(f"/api/vhosts/{v}")
