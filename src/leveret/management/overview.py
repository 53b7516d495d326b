"""The broker as a whole: /api/overview, /api/nodes[/{name}], /api/cluster-name,
/api/extensions and the health checks (/api/health/checks/alarms, .../local-alarms).

leveret is one node. ``rabbitmq_version`` reports the RabbitMQ release whose management
API this one follows, so tools that branch on it take the 3.10 path; ``product_name`` and
``product_version`` say what it really is.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from typing import Any

from aiohttp import web

from leveret.broker.exchanges import TYPES
from leveret.broker.rabbit_definitions import RABBITMQ_VERSION, product_version
from leveret.broker.snapshot import snapshot_connections, snapshot_queue
from leveret.broker.stats import EVENTS, node_counters
from leveret.management.auth import current_user, require_admin, require_monitor, visible_vhosts
from leveret.management.context import Context, context
from leveret.management.http import (
    bad_request,
    json_response,
    missing_keys,
    no_content,
    not_found,
    read_json,
)
from leveret.management.listing import listing, one, stats_disabled
from leveret.management.process import open_fds, process_rss
from leveret.management.rates import DEPTHS, details, message_stats, queue_depths
from leveret.management.stream_connections import all_stream_connections
from leveret.management.validate import text

STARTED = time.monotonic()
EXCHANGE_DESCRIPTIONS = {
    "direct": "AMQP direct exchange, as per the AMQP specification",
    "fanout": "AMQP fanout exchange, as per the AMQP specification",
    "headers": "AMQP headers exchange, as per the AMQP specification",
    "topic": "AMQP topic exchange, as per the AMQP specification",
    "x-delayed-message": "Delayed Message Exchange (leveret, as the RabbitMQ plugin)",
    "x-federation-upstream": "Federation upstream helper exchange",
}
# What RabbitMQ adds to an exchange type made for its own use
INTERNAL_PURPOSE = {"x-federation-upstream": "federation"}


def exchange_types() -> list[dict[str, Any]]:
    return [{"name": name, "description": EXCHANGE_DESCRIPTIONS.get(name, name),
             **({"internal_purpose": INTERNAL_PURPOSE[name]} if name in INTERNAL_PURPOSE
                else {}),
             "enabled": True} for name in sorted(TYPES)]


def listeners(ctx: Context) -> list[dict[str, Any]]:
    broker = ctx.broker
    found = []
    if broker is not None:
        if broker.port is not None:
            found.append({"node": ctx.node_name, "protocol": "amqp",
                          "ip_address": broker.host, "port": broker.port, "socket_opts": {}})
        if broker.ssl_context is not None:
            found.append({"node": ctx.node_name, "protocol": "amqp/ssl",
                          "ip_address": broker.host, "port": broker.tls_port,
                          "socket_opts": {}})
        for protocol, port in (("stream", broker.stream_port),
                               ("stream/ssl", broker.stream_tls_port)):
            if port is not None:
                found.append({"node": ctx.node_name, "protocol": protocol,
                              "ip_address": broker.host, "port": port, "socket_opts": {}})
        port = broker.management_port
        if port:
            found.append({"node": ctx.node_name,
                          "protocol": "https" if broker.management_tls else "http",
                          "ip_address": broker.management_host, "port": port,
                          "socket_opts": {}})
    return found


def contexts(ctx: Context) -> list[dict[str, Any]]:
    broker = ctx.broker
    port = broker.management_port if broker is not None else None
    host = broker.management_host if broker is not None else ""
    return [{"node": ctx.node_name, "description": "leveret management",
             "path": "/", "ip": host, "port": str(port or ""), "ssl_opts": []}]


def alarms(ctx: Context) -> list[str]:
    return list(ctx.node.alarms)


async def overview(request: web.Request) -> web.Response:
    ctx = context(request)
    node = ctx.node
    user = current_user(request)
    names = visible_vhosts(node, user)
    vhosts = [node.vhosts[n] for n in names]
    queues = [snapshot_queue(q) for v in vhosts for q in list(v.queues.values())]
    conns = [c for _, c in snapshot_connections(node) if c.vhost in names]
    streams = [c for c in all_stream_connections(ctx) if c.vhost in names]
    with_stats = not stats_disabled(request)
    item: dict[str, Any] = {
        "management_version": product_version(), "rates_mode": "basic",
        "sample_retention_policies": {"global": [600, 3600, 28800, 86400],
                                      "basic": [600, 3600], "detailed": [600]},
        "exchange_types": exchange_types(),
        "product_version": product_version(), "product_name": "leveret",
        "rabbitmq_version": RABBITMQ_VERSION, "cluster_name": node.cluster_name,
        "erlang_version": platform.python_version(),
        "erlang_full_version": f"Python {platform.python_version()} "
                               f"({platform.python_implementation()})",
        "release_series_support_status": "supported",
        "disable_stats": not with_stats,
        "enable_queue_totals": request.query.get("enable_queue_totals") == "true",
        "object_totals": {
            "connections": len(conns) + len(streams),
            "channels": sum(c.channels for c in conns),
            # (a stream queue counts its stream-protocol subscriptions among them)
            "consumers": sum(q.consumers for q in queues),
            "exchanges": sum(len(v.exchanges) for v in vhosts),
            "queues": len(queues),
        },
        "statistics_db_event_queue": 0,
        "node": ctx.node_name, "listeners": listeners(ctx), "contexts": contexts(ctx),
    }
    if with_stats:
        rates = ctx.sampler.rates(node)
        counters = node_counters(node).as_dict()
        item["message_stats"] = message_stats(counters, (*EVENTS, "deliver_get"), rates) \
            if any(counters.values()) else {}
        totals: dict[str, Any] = dict.fromkeys(DEPTHS, 0)
        for q in queues:
            for key, value in queue_depths(q).items():
                totals[key] += value
        for key in DEPTHS:
            totals[f"{key}_details"] = details(rates, key)
        item["queue_totals"] = totals
    return one(request, item)


def node_json(ctx: Context) -> dict[str, Any]:
    node = ctx.node
    active = alarms(ctx)
    broker = ctx.broker
    data_dir = broker.data_dir if broker is not None else None
    monitor = broker.resources if broker is not None else None
    mem_limit = monitor.memory_limit if monitor is not None else 0
    disk_free_limit = monitor.disk_free_limit if monitor is not None else 0
    disk_free = monitor.disk_free if monitor is not None else None
    if disk_free is None:
        try:
            disk_free = shutil.disk_usage(data_dir or ".").free
        except OSError:
            disk_free = 0
    return {
        "name": ctx.node_name, "type": "disc", "running": True,
        "os_pid": str(os.getpid()), "uptime": int((time.monotonic() - STARTED) * 1000),
        "processors": os.cpu_count() or 1, "run_queue": 0, "rates_mode": "basic",
        "mem_limit": mem_limit, "mem_used": process_rss() or 0,
        "mem_alarm": "memory" in active,
        "disk_free_limit": disk_free_limit, "disk_free": disk_free,
        "disk_free_alarm": "disk" in active,
        "fd_total": os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024,
        "fd_used": open_fds() or 0,
        "sockets_total": 0, "sockets_used": len(node.connections),
        "proc_total": 0, "proc_used": 0,
        "partitions": [], "being_drained": False, "net_ticktime": 60,
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism",
             "enabled": True},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": True}],
        "applications": [{"name": "leveret", "description": "leveret AMQP 0-9-1 broker",
                          "version": product_version()}],
        "contexts": contexts(ctx), "listeners": listeners(ctx),
        "enabled_plugins": ["rabbitmq_management"],
        "log_files": [], "config_files": [],
        "db_dir": str(data_dir) if data_dir is not None else "",
        "cluster_links": [],
    }


async def nodes(request: web.Request) -> web.Response:
    require_monitor(request)
    return listing(request, [node_json(context(request))], default_sort=("name",))


async def get_node(request: web.Request) -> web.Response:
    require_monitor(request)
    ctx = context(request)
    if request.match_info["name"] != ctx.node_name:
        raise not_found()
    return one(request, node_json(ctx))


async def cluster_name(request: web.Request) -> web.Response:
    return json_response({"name": context(request).node.cluster_name})


async def put_cluster_name(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    missing_keys(body, "name")
    context(request).node.set_cluster_name(text(body, "name"))
    return no_content()


async def extensions(request: web.Request) -> web.Response:
    """Web UI plugins: none."""
    return json_response([])


async def alarm_check(request: web.Request) -> web.Response:
    ctx = context(request)
    active = alarms(ctx)
    if not active:
        return json_response({"status": "ok"})
    return json_response({
        "status": "failed", "reason": "There are alarms in effect in the cluster",
        "alarms": [{"node": ctx.node_name, "resource": name} for name in active]}, 503)


# -- health checks (RabbitMQ's /api/health/checks/*, used by probes and monitors) --------

def _listeners(ctx: Context) -> list[tuple[str, int]]:
    """(protocol, port) of what this broker listens on, RabbitMQ's protocol names."""
    broker = ctx.broker
    found: list[tuple[str, int]] = []
    if broker is None:
        return found
    if broker.port is not None:
        found.append(("amqp", broker.port))
    if broker.ssl_context is not None:
        found.append(("amqp/ssl", broker.tls_port))
    if broker.stream_port is not None:
        found.append(("stream", broker.stream_port))
    if broker.stream_tls_port is not None:
        found.append(("stream/ssl", broker.stream_tls_port))
    if broker.management_port is not None:
        found.append(("https" if broker.management_tls else "http", broker.management_port))
    return found


async def port_listener_check(request: web.Request) -> web.Response:
    ctx = context(request)
    try:
        port = int(request.match_info["port"])
    except ValueError:
        raise bad_request(f"invalid port: {request.match_info['port']}") from None
    ports = sorted(p for _, p in _listeners(ctx))
    if port in ports:
        return json_response({"status": "ok", "port": port})
    return json_response({"status": "failed", "reason": "No active listener", "missing": port,
                          "ports": ports}, 503)


async def protocol_listener_check(request: web.Request) -> web.Response:
    ctx = context(request)
    protocol = request.match_info["protocol"]
    protocols = [name for name, _ in _listeners(ctx)]
    if protocol in protocols:
        return json_response({"status": "ok", "protocol": protocol})
    return json_response({"status": "failed", "reason": "No active listener",
                          "missing": protocol, "protocols": protocols}, 503)


async def virtual_hosts_check(request: web.Request) -> web.Response:
    """Every vhost is served by this one process: up while the API answers."""
    return json_response({"status": "ok"})


async def single_node_check(request: web.Request) -> web.Response:
    """Quorum and mirror-sync criticality: leveret is a single node, never critical."""
    return json_response({"status": "ok", "reason": "single node cluster"})


async def certificate_expiration_check(request: web.Request) -> web.Response:
    """Fails when the TLS certificate expires within the given time, as RabbitMQ's."""
    ctx = context(request)
    units = {"days": 86400, "weeks": 7 * 86400, "months": 30 * 86400, "years": 365 * 86400}
    unit = request.match_info["unit"]
    try:
        within = int(request.match_info["within"]) * units[unit]
    except (ValueError, KeyError):
        raise bad_request("expected /certificate-expiration/<number>/<days|weeks|months|"
                          "years>") from None
    broker = ctx.broker
    tls = broker.tls if broker is not None else None
    expiry = _certificate_expiry(tls.certfile) if tls is not None else None
    if broker is None or tls is None or expiry is None or expiry - time.time() > within:
        return json_response({"status": "ok"})
    return json_response({
        "status": "failed", "reason": "Certificates expiring",
        "expired": [{"node": ctx.node_name, "protocol": "amqp/ssl",
                     "port": broker.tls_port, "certfile": str(tls.certfile),
                     "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                              time.gmtime(expiry))}]}, 503)


def _certificate_expiry(certfile: Any) -> float | None:
    import ssl

    try:  # the stdlib's certificate decoder: notAfter, without another dependency
        decoded = ssl._ssl._test_decode_cert(str(certfile))  # type: ignore[attr-defined]
        return float(ssl.cert_time_to_seconds(decoded["notAfter"]))
    except (OSError, ValueError, KeyError, AttributeError, ssl.SSLError):
        return None


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/overview", overview)
    r.add_get("/api/nodes", nodes)
    r.add_get("/api/nodes/{name}", get_node)
    r.add_get("/api/cluster-name", cluster_name)
    r.add_put("/api/cluster-name", put_cluster_name)
    r.add_get("/api/extensions", extensions)
    r.add_get("/api/health/checks/alarms", alarm_check)
    r.add_get("/api/health/checks/local-alarms", alarm_check)
    r.add_get("/api/health/checks/virtual-hosts", virtual_hosts_check)
    r.add_get("/api/health/checks/port-listener/{port}", port_listener_check)
    r.add_get("/api/health/checks/protocol-listener/{protocol:.+}", protocol_listener_check)
    r.add_get("/api/health/checks/node-is-quorum-critical", single_node_check)
    r.add_get("/api/health/checks/node-is-mirror-sync-critical", single_node_check)
    r.add_get("/api/health/checks/certificate-expiration/{within}/{unit}",
              certificate_expiration_check)
