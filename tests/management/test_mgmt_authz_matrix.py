"""Who may call what, route by route: every management route and method, asked by a user of
each tag (none, management, policymaker, monitoring, administrator) who has permissions in
vhost A only, about objects in A and about the same objects in vhost B.

RabbitMQ's answers are the table EXPECTED, so the test guards leveret without the reference
broker; when the reference is reachable the same requests go to it too and must still get
the table's answers (a failure there prints the table as the reference now answers). An
answer is the status, for a JSON 200 the vhosts whose names it shows (``200:AB``), and for a
401 a letter for the reason (REFUSALS).

Every route the app registers needs cases (``test_every_route_has_cases``), so a new route
cannot skip the matrix. Mutating cases change scratch objects (``sq``, ``sx``, ...), never
the ones the reads look at; the world recreates a scratch object before each request that
needs it, and notes when a request changed it.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pytest
from mgmt_helpers import Api, Reply, q
from stream_client import StreamClient

from leveret.broker.node import Node
from leveret.management.app import create_app

TAGS = ("none", "management", "policymaker", "monitoring", "administrator")
PASSWORD = "authz-pw"
ALL = {"configure": ".*", "write": ".*", "read": ".*"}
TOPIC = {"exchange": "amq.topic", "write": ".*", "read": ".*"}
POLICY = {"pattern": "^authz-nothing$", "definition": {"max-length": 10},
          "apply-to": "queues"}
SHOVEL = {"src-uri": "amqp://", "src-queue": "authz-shovel-src", "dest-uri": "amqp://",
          "dest-queue": "authz-shovel-dst"}
# The shovel routes come with RabbitMQ's shovel plugins, which the shared reference does not
# run: their answers were recorded on a RabbitMQ 3.10 node with rabbitmq_shovel and
# rabbitmq_shovel_management; set LEVERET_REFERENCE_HAS_SHOVEL=1 to check them again there.
# The federation routes: RabbitMQ's federation plugins are not on the shared reference
# either; leveret applies the shovel parameters' rules (policymaker, vhost permissions).
UPSTREAM = {"uri": "amqp://authz-upstream"}
UPSTREAM_SET = [{"upstream": "fu"}]
SHOVEL_PLUGIN = bool(os.environ.get("LEVERET_REFERENCE_HAS_SHOVEL"))
# Likewise the stream routes (rabbitmq_stream_management): recorded on a RabbitMQ 3.10.8
# node with rabbitmq_stream; set LEVERET_REFERENCE_HAS_STREAM=1 and
# LEVERET_REFERENCE_STREAM_PORT to check them again against such a reference.
STREAM_PLUGIN = bool(os.environ.get("LEVERET_REFERENCE_HAS_STREAM"))
REFERENCE_STREAM_PORT = int(os.environ.get("LEVERET_REFERENCE_STREAM_PORT", "5552"))
REFERENCE_AMQP = os.environ.get("LEVERET_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5673/")
REFUSALS = {
    "Not management user": "M",  # no management tag
    "Not administrator user": "A",
    "Not monitor user": "N",
    "User not authorised to access virtual host": "V",  # no permissions in the vhost
    "User not authorised to access object": "O",  # another user's connection; a policy
    "Access refused.": "R",  # the vhost's permissions, checked as a client's would be
}
# Not the management API: Prometheus scrapes /metrics without credentials, and the rest is
# the web UI's static files.
NOT_API = {"/metrics", "/{path}"}


@dataclass(frozen=True)
class Case:
    """One request. ``path`` and string values in ``body`` name objects by field: {v} the
    vhost (A or B), {sv} a scratch vhost whose permissions are as A's or B's, {conn} and
    {chan} the connection and channel in the vhost, {sconn} the stream-protocol connection
    (a publisher and a subscription on stream s) in the vhost, {victim} a user with
    permissions and
    limits in both vhosts, {grantee} a user whose permissions the cases set and clear,
    {su} a scratch user, {node}, {cluster}, {port} the broker's own."""

    method: str
    route: str  # as the app registers it
    path: str
    body: Any = None
    scratch: str | None = None  # the scratch object the request changes
    exists: bool = True  # whether it must exist first; a 2xx answer changes that
    leveret_only: bool = False  # no such route in RabbitMQ: answers as its nearest sibling's

    @property
    def variants(self) -> tuple[str, ...]:
        """A and B for requests about something in a vhost, else just one."""
        if any(f in self.path for f in ("{v}", "{sv}", "{conn}", "{chan}", "{sconn}")):
            return ("A", "B")
        return ("-",)

    def key(self, variant: str) -> str:
        return f"{self.method} {self.path} {variant}"


def case(method: str, route: str, path: str | None = None, body: Any = None,
         **kw: Any) -> Case:
    return Case(method, route, path or route, body, **kw)


def _federation_cases() -> list[Case]:
    found = []
    for component, scratch, value, name in (("upstream", "upstream", UPSTREAM, "fu"),
                                            ("upstream-set", "upstream-set", UPSTREAM_SET,
                                             "fs")):
        b = f"/api/parameters/federation-{component}"
        found += [case("GET", b, leveret_only=True),
                  case("GET", b + "/{vhost}", b + "/{v}", leveret_only=True),
                  case("GET", b + "/{vhost}/{name}", f"{b}/{{v}}/{name}", leveret_only=True),
                  case("PUT", b + "/{vhost}/{name}", f"{b}/{{v}}/s{name}", {"value": value},
                       scratch=scratch, exists=False, leveret_only=True),
                  case("DELETE", b + "/{vhost}/{name}", f"{b}/{{v}}/s{name}",
                       scratch=scratch, leveret_only=True)]
    return found


FEDERATION_CASES = _federation_cases()


def _stream_cases() -> list[Case]:
    c = "/api/stream/connections"
    named = c + "/{vhost}/{name}"
    other = not STREAM_PLUGIN
    return [case("GET", c, leveret_only=other),
            case("GET", c + "/{vhost}", c + "/{v}", leveret_only=other),
            case("GET", named, c + "/{v}/{sconn}", leveret_only=other),
            case("DELETE", named, c + "/{v}/{sconn}", scratch="stream-connection",
                 leveret_only=other),
            case("GET", named + "/publishers", c + "/{v}/{sconn}/publishers",
                 leveret_only=other),
            case("GET", named + "/consumers", c + "/{v}/{sconn}/consumers",
                 leveret_only=other),
            case("GET", "/api/stream/publishers", leveret_only=other),
            case("GET", "/api/stream/publishers/{vhost}", "/api/stream/publishers/{v}",
                 leveret_only=other),
            case("GET", "/api/stream/publishers/{vhost}/{stream}",
                 "/api/stream/publishers/{v}/s", leveret_only=other),
            case("GET", "/api/stream/consumers", leveret_only=other),
            case("GET", "/api/stream/consumers/{vhost}", "/api/stream/consumers/{v}",
                 leveret_only=other)]


STREAM_CASES = _stream_cases()


BINDING = "/api/bindings/{vhost}/e/{source}/{kind}/{destination}"
CASES = [
    case("GET", "/api/"),
    case("GET", "/api/overview"),
    case("GET", "/api/nodes"),
    case("GET", "/api/nodes/{name}", "/api/nodes/{node}"),
    case("GET", "/api/cluster-name"),
    case("PUT", "/api/cluster-name", body={"name": "{cluster}"}),
    case("GET", "/api/extensions"),
    case("GET", "/api/health/checks/alarms"),
    case("GET", "/api/health/checks/local-alarms"),
    case("GET", "/api/health/checks/virtual-hosts"),
    case("GET", "/api/health/checks/port-listener/{port}"),
    case("GET", "/api/health/checks/protocol-listener/{protocol}",
         "/api/health/checks/protocol-listener/amqp"),
    case("GET", "/api/health/checks/node-is-quorum-critical"),
    case("GET", "/api/health/checks/node-is-mirror-sync-critical"),
    case("GET", "/api/health/checks/certificate-expiration/{within}/{unit}",
         "/api/health/checks/certificate-expiration/1/days"),
    # vhosts
    case("GET", "/api/vhosts"),
    case("GET", "/api/vhosts/{vhost}", "/api/vhosts/{v}"),
    case("PUT", "/api/vhosts/{vhost}", "/api/vhosts/{v}", {}),  # exists: changes nothing
    case("DELETE", "/api/vhosts/{vhost}", "/api/vhosts/{sv}", scratch="vhost"),
    case("GET", "/api/vhosts/{vhost}/permissions", "/api/vhosts/{v}/permissions"),
    case("GET", "/api/vhosts/{vhost}/topic-permissions", "/api/vhosts/{v}/topic-permissions"),
    case("GET", "/api/vhost-limits"),
    case("GET", "/api/vhost-limits/{vhost}", "/api/vhost-limits/{v}"),
    case("PUT", "/api/vhost-limits/{vhost}/{name}", "/api/vhost-limits/{v}/max-queues",
         {"value": 1000}),
    case("DELETE", "/api/vhost-limits/{vhost}/{name}", "/api/vhost-limits/{v}/max-queues"),
    # users and permissions
    case("GET", "/api/whoami"),
    case("GET", "/api/users"),
    case("GET", "/api/users/without-permissions"),
    case("POST", "/api/users/bulk-delete", body={"users": ["{su}"]}, scratch="user"),
    case("GET", "/api/users/{user}", "/api/users/{victim}"),
    case("PUT", "/api/users/{user}", "/api/users/{su}", {"password": PASSWORD, "tags": ""},
         scratch="user", exists=False),
    case("DELETE", "/api/users/{user}", "/api/users/{su}", scratch="user"),
    case("GET", "/api/users/{user}/permissions", "/api/users/{victim}/permissions"),
    case("GET", "/api/users/{user}/topic-permissions", "/api/users/{victim}/topic-permissions"),
    case("GET", "/api/permissions"),
    case("GET", "/api/permissions/{vhost}/{user}", "/api/permissions/{v}/{victim}"),
    case("PUT", "/api/permissions/{vhost}/{user}", "/api/permissions/{v}/{grantee}", ALL,
         scratch="permission", exists=False),
    case("DELETE", "/api/permissions/{vhost}/{user}", "/api/permissions/{v}/{grantee}",
         scratch="permission"),
    case("GET", "/api/topic-permissions"),
    case("GET", "/api/topic-permissions/{vhost}/{user}", "/api/topic-permissions/{v}/{victim}"),
    case("PUT", "/api/topic-permissions/{vhost}/{user}", "/api/topic-permissions/{v}/{grantee}",
         TOPIC, scratch="topic-permission", exists=False),
    case("DELETE", "/api/topic-permissions/{vhost}/{user}",
         "/api/topic-permissions/{v}/{grantee}", scratch="topic-permission"),
    case("GET", "/api/user-limits"),
    case("GET", "/api/user-limits/{user}", "/api/user-limits/{victim}"),
    case("PUT", "/api/user-limits/{user}/{name}", "/api/user-limits/{victim}/max-channels",
         {"value": 10}),
    case("DELETE", "/api/user-limits/{user}/{name}", "/api/user-limits/{victim}/max-channels"),
    # exchanges, queues, bindings
    case("GET", "/api/exchanges"),
    case("GET", "/api/exchanges/{vhost}", "/api/exchanges/{v}"),
    case("GET", "/api/exchanges/{vhost}/{name}", "/api/exchanges/{v}/x"),
    case("PUT", "/api/exchanges/{vhost}/{name}", "/api/exchanges/{v}/sx", {"type": "direct"},
         scratch="exchange", exists=False),
    case("DELETE", "/api/exchanges/{vhost}/{name}", "/api/exchanges/{v}/sx",
         scratch="exchange"),
    case("GET", "/api/queues"),
    case("GET", "/api/queues/{vhost}", "/api/queues/{v}"),
    case("GET", "/api/queues/{vhost}/{name}", "/api/queues/{v}/q"),
    case("PUT", "/api/queues/{vhost}/{name}", "/api/queues/{v}/sq", {}, scratch="queue",
         exists=False),
    case("DELETE", "/api/queues/{vhost}/{name}", "/api/queues/{v}/sq", scratch="queue"),
    case("DELETE", "/api/queues/{vhost}/{name}/contents", "/api/queues/{v}/q/contents"),
    case("POST", "/api/queues/{vhost}/{name}/actions", "/api/queues/{v}/q/actions",
         {"action": "sync"}),
    case("GET", "/api/bindings"),
    case("GET", "/api/bindings/{vhost}", "/api/bindings/{v}"),
    case("GET", BINDING, "/api/bindings/{v}/e/x/q/q"),
    case("POST", BINDING, "/api/bindings/{v}/e/x/q/q", {"routing_key": "sk"},
         scratch="binding", exists=False),
    case("GET", BINDING + "/{props}", "/api/bindings/{v}/e/x/q/q/k"),
    case("DELETE", BINDING + "/{props}", "/api/bindings/{v}/e/x/q/q/sk", scratch="binding"),
    case("GET", "/api/exchanges/{vhost}/{name}/bindings/{direction}",
         "/api/exchanges/{v}/x/bindings/source"),
    case("GET", "/api/queues/{vhost}/{name}/bindings", "/api/queues/{v}/q/bindings"),
    # connections, channels, consumers
    case("GET", "/api/connections"),
    case("GET", "/api/vhosts/{vhost}/connections", "/api/vhosts/{v}/connections"),
    case("GET", "/api/connections/{name}", "/api/connections/{conn}"),
    case("DELETE", "/api/connections/{name}", "/api/connections/{conn}",
         scratch="connection"),
    case("GET", "/api/connections/{name}/channels", "/api/connections/{conn}/channels"),
    case("GET", "/api/channels"),
    case("GET", "/api/vhosts/{vhost}/channels", "/api/vhosts/{v}/channels"),
    case("GET", "/api/channels/{name}", "/api/channels/{chan}"),
    case("GET", "/api/consumers"),
    case("GET", "/api/consumers/{vhost}", "/api/consumers/{v}"),
    # the stream protocol's (rabbitmq_stream_management)
    *STREAM_CASES,
    # shovels
    case("GET", "/api/parameters/shovel", leveret_only=not SHOVEL_PLUGIN),
    case("GET", "/api/parameters/shovel/{vhost}", "/api/parameters/shovel/{v}",
         leveret_only=not SHOVEL_PLUGIN),
    case("GET", "/api/parameters/shovel/{vhost}/{name}", "/api/parameters/shovel/{v}/sh",
         leveret_only=not SHOVEL_PLUGIN),
    case("PUT", "/api/parameters/shovel/{vhost}/{name}", "/api/parameters/shovel/{v}/ssh",
         {"value": SHOVEL}, scratch="shovel", exists=False, leveret_only=not SHOVEL_PLUGIN),
    case("DELETE", "/api/parameters/shovel/{vhost}/{name}", "/api/parameters/shovel/{v}/ssh",
         scratch="shovel", leveret_only=not SHOVEL_PLUGIN),
    case("GET", "/api/shovels", leveret_only=not SHOVEL_PLUGIN),
    case("GET", "/api/shovels/{vhost}", "/api/shovels/{v}", leveret_only=not SHOVEL_PLUGIN),
    case("DELETE", "/api/shovels/vhost/{vhost}/{name}/restart",
         "/api/shovels/vhost/{v}/sh/restart", leveret_only=not SHOVEL_PLUGIN),
    case("GET", "/api/shovels/vhost/{vhost}/{name}", "/api/shovels/vhost/{v}/sh",
         leveret_only=not SHOVEL_PLUGIN),
    case("DELETE", "/api/shovels/vhost/{vhost}/{name}", "/api/shovels/vhost/{v}/ssh",
         scratch="shovel", leveret_only=not SHOVEL_PLUGIN),
    # federation (leveret's rules: those of the shovel parameters)
    *FEDERATION_CASES,
    case("GET", "/api/federation-links", leveret_only=True),
    case("GET", "/api/federation-links/{vhost}", "/api/federation-links/{v}",
         leveret_only=True),
    # policies and definitions
    case("GET", "/api/policies"),
    case("GET", "/api/policies/{vhost}", "/api/policies/{v}"),
    case("GET", "/api/policies/{vhost}/{name}", "/api/policies/{v}/p"),
    case("PUT", "/api/policies/{vhost}/{name}", "/api/policies/{v}/sp", POLICY,
         scratch="policy", exists=False),
    case("DELETE", "/api/policies/{vhost}/{name}", "/api/policies/{v}/sp", scratch="policy"),
    case("GET", "/api/definitions"),
    case("POST", "/api/definitions", body={}),
    case("GET", "/api/definitions/{vhost}", "/api/definitions/{v}"),
    case("POST", "/api/definitions/{vhost}", "/api/definitions/{v}", {}),
    # messages
    case("POST", "/api/exchanges/{vhost}/{name}/publish", "/api/exchanges/{v}/x/publish",
         {"properties": {}, "routing_key": "nowhere", "payload": "authz",
          "payload_encoding": "string"}),
    case("POST", "/api/queues/{vhost}/{name}/get", "/api/queues/{v}/q/get",
         {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
    case("GET", "/api/queues/{vhost}/{name}/peek", "/api/queues/{v}/q/peek",
         leveret_only=True),  # as POST .../get
    case("GET", "/api/aliveness-test/{vhost}", "/api/aliveness-test/{v}"),
]

# RabbitMQ 3.10's answers, per tag in TAGS order.
EXPECTED: dict[str, str] = {
    "GET /api/ -": "301 301 301 301 301",
    "GET /api/overview -": "401M 200 200 200 200",
    "GET /api/nodes -": "401M 401N 401N 200 200",
    "GET /api/nodes/{node} -": "401M 401N 401N 200 200",
    "GET /api/cluster-name -": "401M 200 200 200 200",
    "PUT /api/cluster-name -": "401M 401A 401A 401A 204",
    "GET /api/extensions -": "401M 200 200 200 200",
    "GET /api/health/checks/alarms -": "401M 200 200 200 200",
    "GET /api/health/checks/local-alarms -": "401M 200 200 200 200",
    "GET /api/health/checks/virtual-hosts -": "401M 200 200 200 200",
    "GET /api/health/checks/port-listener/{port} -": "401M 200 200 200 200",
    "GET /api/health/checks/protocol-listener/amqp -": "401M 200 200 200 200",
    "GET /api/health/checks/node-is-quorum-critical -": "401M 200 200 200 200",
    "GET /api/health/checks/node-is-mirror-sync-critical -": "401M 200 200 200 200",
    "GET /api/health/checks/certificate-expiration/1/days -": "401M 200 200 200 200",
    "GET /api/vhosts -": "401M 200:A 200:A 200:AB 200:AB",
    "GET /api/vhosts/{v} A": "401M 401A 401A 401A 200:A",
    "GET /api/vhosts/{v} B": "401M 401A 401A 401A 200:B",
    "PUT /api/vhosts/{v} A": "401M 401A 401A 401A 204",
    "PUT /api/vhosts/{v} B": "401M 401A 401A 401A 204",
    "DELETE /api/vhosts/{sv} A": "401M 401A 401A 401A 204",
    "DELETE /api/vhosts/{sv} B": "401M 401A 401A 401A 204",
    "GET /api/vhosts/{v}/permissions A": "401M 401A 401A 401A 200:A",
    "GET /api/vhosts/{v}/permissions B": "401M 401A 401A 401A 200:B",
    "GET /api/vhosts/{v}/topic-permissions A": "401M 401A 401A 401A 200:A",
    "GET /api/vhosts/{v}/topic-permissions B": "401M 401A 401A 401A 200:B",
    "GET /api/vhost-limits -": "401M 200:A 200:A 200:AB 200:AB",
    "GET /api/vhost-limits/{v} A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/vhost-limits/{v} B": "401M 401V 401V 200:B 200:B",
    "PUT /api/vhost-limits/{v}/max-queues A": "401M 401A 401A 401A 204",
    "PUT /api/vhost-limits/{v}/max-queues B": "401M 401A 401A 401A 204",
    "DELETE /api/vhost-limits/{v}/max-queues A": "401M 401A 401A 401A 204",
    "DELETE /api/vhost-limits/{v}/max-queues B": "401M 401A 401A 401A 204",
    "GET /api/whoami -": "401M 200 200 200 200",
    "GET /api/users -": "401M 401A 401A 401A 200",
    "GET /api/users/without-permissions -": "401M 401A 401A 401A 200",
    "POST /api/users/bulk-delete -": "401M 401A 401A 401A 204",
    "GET /api/users/{victim} -": "401M 401A 401A 401A 200",
    "PUT /api/users/{su} -": "401M 401A 401A 401A 201",
    "DELETE /api/users/{su} -": "401M 401A 401A 401A 204",
    "GET /api/users/{victim}/permissions -": "401M 401A 401A 401A 200:AB",
    "GET /api/users/{victim}/topic-permissions -": "401M 401A 401A 401A 200:AB",
    "GET /api/permissions -": "401M 401A 401A 401A 200:AB",
    "GET /api/permissions/{v}/{victim} A": "401M 401A 401A 401A 200:A",
    "GET /api/permissions/{v}/{victim} B": "401M 401A 401A 401A 200:B",
    "PUT /api/permissions/{v}/{grantee} A": "401M 401A 401A 401A 201",
    "PUT /api/permissions/{v}/{grantee} B": "401M 401A 401A 401A 201",
    "DELETE /api/permissions/{v}/{grantee} A": "401M 401A 401A 401A 204",
    "DELETE /api/permissions/{v}/{grantee} B": "401M 401A 401A 401A 204",
    "GET /api/topic-permissions -": "401M 401A 401A 401A 200:AB",
    "GET /api/topic-permissions/{v}/{victim} A": "401M 401A 401A 401A 200:A",
    "GET /api/topic-permissions/{v}/{victim} B": "401M 401A 401A 401A 200:B",
    "PUT /api/topic-permissions/{v}/{grantee} A": "401M 401A 401A 401A 201",
    "PUT /api/topic-permissions/{v}/{grantee} B": "401M 401A 401A 401A 201",
    "DELETE /api/topic-permissions/{v}/{grantee} A": "401M 401A 401A 401A 204",
    "DELETE /api/topic-permissions/{v}/{grantee} B": "401M 401A 401A 401A 204",
    "GET /api/user-limits -": "401M 200 200 200 200",
    "GET /api/user-limits/{victim} -": "401M 200 200 200 200",
    "PUT /api/user-limits/{victim}/max-channels -": "401M 401A 401A 401A 204",
    "DELETE /api/user-limits/{victim}/max-channels -": "401M 401A 401A 401A 204",
    "GET /api/exchanges -": "401M 200:A 200:A 200:A 200:AB",
    "GET /api/exchanges/{v} A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/exchanges/{v} B": "401M 401V 401V 401V 200:B",
    "GET /api/exchanges/{v}/x A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/exchanges/{v}/x B": "401M 401V 401V 401V 200:B",
    "PUT /api/exchanges/{v}/sx A": "401M 201 201 201 201",
    "PUT /api/exchanges/{v}/sx B": "401M 401V 401V 401V 401R",
    "DELETE /api/exchanges/{v}/sx A": "401M 204 204 204 204",
    "DELETE /api/exchanges/{v}/sx B": "401M 401V 401V 401V 401R",
    "GET /api/queues -": "401M 200:A 200:A 200:A 200:AB",
    "GET /api/queues/{v} A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/queues/{v} B": "401M 401V 401V 401V 200:B",
    "GET /api/queues/{v}/q A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/queues/{v}/q B": "401M 401V 401V 401V 200:B",
    "PUT /api/queues/{v}/sq A": "401M 201 201 201 201",
    "PUT /api/queues/{v}/sq B": "401M 401V 401V 401V 401R",
    "DELETE /api/queues/{v}/sq A": "401M 204 204 204 204",
    "DELETE /api/queues/{v}/sq B": "401M 401V 401V 401V 401R",
    "DELETE /api/queues/{v}/q/contents A": "401M 204 204 204 204",
    "DELETE /api/queues/{v}/q/contents B": "401M 401V 401V 401V 401R",
    "POST /api/queues/{v}/q/actions A": "401M 401A 401A 401A 204",
    "POST /api/queues/{v}/q/actions B": "401M 401A 401A 401A 204",
    "GET /api/bindings -": "401M 200:A 200:A 200:A 200:AB",
    "GET /api/bindings/{v} A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/bindings/{v} B": "401M 401V 401V 401V 200:B",
    "GET /api/bindings/{v}/e/x/q/q A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/bindings/{v}/e/x/q/q B": "401M 401V 401V 401V 200:B",
    "POST /api/bindings/{v}/e/x/q/q A": "401M 201 201 201 201",
    "POST /api/bindings/{v}/e/x/q/q B": "401M 401V 401V 401V 401R",
    "GET /api/bindings/{v}/e/x/q/q/k A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/bindings/{v}/e/x/q/q/k B": "401M 401V 401V 401V 200:B",
    "DELETE /api/bindings/{v}/e/x/q/q/sk A": "401M 204 204 204 204",
    "DELETE /api/bindings/{v}/e/x/q/q/sk B": "401M 401V 401V 401V 401R",
    "GET /api/exchanges/{v}/x/bindings/source A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/exchanges/{v}/x/bindings/source B": "401M 401V 401V 401V 200:B",
    "GET /api/queues/{v}/q/bindings A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/queues/{v}/q/bindings B": "401M 401V 401V 401V 200:B",
    "GET /api/connections -": "401M 200 200 200:AB 200:AB",
    "GET /api/vhosts/{v}/connections A": "401M 200 200 200:A 200:A",
    "GET /api/vhosts/{v}/connections B": "401M 401V 401V 401V 200:B",
    "GET /api/connections/{conn} A": "401M 401O 401O 200:A 200:A",
    "GET /api/connections/{conn} B": "401M 401O 401O 200:B 200:B",
    "DELETE /api/connections/{conn} A": "401M 401O 401O 401O 204",
    "DELETE /api/connections/{conn} B": "401M 401O 401O 401O 204",
    "GET /api/connections/{conn}/channels A": "401M 401O 401O 200:A 200:A",
    "GET /api/connections/{conn}/channels B": "401M 401O 401O 200:B 200:B",
    "GET /api/channels -": "401M 200 200 200:AB 200:AB",
    "GET /api/vhosts/{v}/channels A": "401M 200 200 200:A 200:A",
    "GET /api/vhosts/{v}/channels B": "401M 401V 401V 401V 200:B",
    "GET /api/channels/{chan} A": "401M 401O 401O 200:A 200:A",
    "GET /api/channels/{chan} B": "401M 401O 401O 200:B 200:B",
    "GET /api/consumers -": "401M 200 200 200:AB 200:AB",
    "GET /api/consumers/{v} A": "401M 200 200 200:A 200:A",
    "GET /api/consumers/{v} B": "401M 200 200 200:B 200:B",
    # recorded on RabbitMQ 3.10.8 with rabbitmq_stream_management (see STREAM_PLUGIN): the
    # vhost's connections are open to monitoring users without permissions there
    "GET /api/stream/connections -": "401M 200 200 200:AB 200:AB",
    "GET /api/stream/connections/{v} A": "401M 200 200 200:A 200:A",
    "GET /api/stream/connections/{v} B": "401M 401V 401V 200:B 200:B",
    "GET /api/stream/connections/{v}/{sconn} A": "401M 401O 401O 200:A 200:A",
    "GET /api/stream/connections/{v}/{sconn} B": "401M 401O 401O 200:B 200:B",
    "DELETE /api/stream/connections/{v}/{sconn} A": "401M 401O 401O 401O 204",
    "DELETE /api/stream/connections/{v}/{sconn} B": "401M 401O 401O 401O 204",
    "GET /api/stream/connections/{v}/{sconn}/publishers A": "401M 401O 401O 200:A 200:A",
    "GET /api/stream/connections/{v}/{sconn}/publishers B": "401M 401O 401O 200:B 200:B",
    "GET /api/stream/connections/{v}/{sconn}/consumers A": "401M 401O 401O 200:A 200:A",
    "GET /api/stream/connections/{v}/{sconn}/consumers B": "401M 401O 401O 200:B 200:B",
    "GET /api/stream/publishers -": "401M 200 200 200:AB 200:AB",
    "GET /api/stream/publishers/{v} A": "401M 200 200 200:A 200:A",
    "GET /api/stream/publishers/{v} B": "401M 200 200 200:B 200:B",
    "GET /api/stream/publishers/{v}/s A": "401M 200 200 200:A 200:A",
    "GET /api/stream/publishers/{v}/s B": "401M 200 200 200:B 200:B",
    "GET /api/stream/consumers -": "401M 200 200 200:AB 200:AB",
    "GET /api/stream/consumers/{v} A": "401M 200 200 200:A 200:A",
    "GET /api/stream/consumers/{v} B": "401M 200 200 200:B 200:B",
    # recorded on RabbitMQ 3.10.8 with the shovel plugins (see SHOVEL_PLUGIN); the PUT is a
    # 400 since "amqp://" is the vhost "/", where these users have no permissions
    "GET /api/parameters/shovel -": "401M 401O 200:A 401O 200:AB",
    "GET /api/parameters/shovel/{v} A": "401M 401O 200:A 401O 200:A",
    "GET /api/parameters/shovel/{v} B": "401M 401O 401O 401O 200:B",
    "GET /api/parameters/shovel/{v}/sh A": "401M 401O 200:A 401O 200:A",
    "GET /api/parameters/shovel/{v}/sh B": "401M 401O 401O 401O 200:B",
    "PUT /api/parameters/shovel/{v}/ssh A": "401M 401O 400 401O 400",
    "PUT /api/parameters/shovel/{v}/ssh B": "401M 401O 401O 401O 400",
    "DELETE /api/parameters/shovel/{v}/ssh A": "401M 401O 204 401O 204",
    "DELETE /api/parameters/shovel/{v}/ssh B": "401M 401O 401O 401O 204",
    "GET /api/shovels -": "401M 401N 401N 200:A 200:A",
    "GET /api/shovels/{v} A": "401M 401N 401N 200:A 200:A",
    "GET /api/shovels/{v} B": "401M 401N 401N 200 200",
    "DELETE /api/shovels/vhost/{v}/sh/restart A": "401M 401N 401N 204 204",
    "DELETE /api/shovels/vhost/{v}/sh/restart B": "401M 401N 401N 404 404",
    "GET /api/shovels/vhost/{v}/sh A": "401M 401N 401N 200:A 200:A",
    "GET /api/shovels/vhost/{v}/sh B": "401M 401N 401N 404 404",
    "DELETE /api/shovels/vhost/{v}/ssh A": "401M 401N 401N 204 204",
    "DELETE /api/shovels/vhost/{v}/ssh B": "401M 401N 401N 404 404",
    # federation: leveret's, as the shovel parameters' (not recorded on RabbitMQ)
    "GET /api/parameters/federation-upstream -": "401M 401O 200:A 401O 200:AB",
    "GET /api/parameters/federation-upstream/{v} A": "401M 401O 200:A 401O 200:A",
    "GET /api/parameters/federation-upstream/{v} B": "401M 401O 401O 401O 200:B",
    "GET /api/parameters/federation-upstream/{v}/fu A": "401M 401O 200:A 401O 200:A",
    "GET /api/parameters/federation-upstream/{v}/fu B": "401M 401O 401O 401O 200:B",
    "PUT /api/parameters/federation-upstream/{v}/sfu A": "401M 401O 201 401O 201",
    "PUT /api/parameters/federation-upstream/{v}/sfu B": "401M 401O 401O 401O 201",
    "DELETE /api/parameters/federation-upstream/{v}/sfu A": "401M 401O 204 401O 204",
    "DELETE /api/parameters/federation-upstream/{v}/sfu B": "401M 401O 401O 401O 204",
    "GET /api/parameters/federation-upstream-set -": "401M 401O 200:A 401O 200:AB",
    "GET /api/parameters/federation-upstream-set/{v} A": "401M 401O 200:A 401O 200:A",
    "GET /api/parameters/federation-upstream-set/{v} B": "401M 401O 401O 401O 200:B",
    "GET /api/parameters/federation-upstream-set/{v}/fs A": "401M 401O 200:A 401O 200:A",
    "GET /api/parameters/federation-upstream-set/{v}/fs B": "401M 401O 401O 401O 200:B",
    "PUT /api/parameters/federation-upstream-set/{v}/sfs A": "401M 401O 201 401O 201",
    "PUT /api/parameters/federation-upstream-set/{v}/sfs B": "401M 401O 401O 401O 201",
    "DELETE /api/parameters/federation-upstream-set/{v}/sfs A": "401M 401O 204 401O 204",
    "DELETE /api/parameters/federation-upstream-set/{v}/sfs B": "401M 401O 401O 401O 204",
    "GET /api/federation-links -": "401M 401N 401N 200 200",  # no links in the world
    "GET /api/federation-links/{v} A": "401M 401N 401N 200 200",
    "GET /api/federation-links/{v} B": "401M 401N 401N 200 200",
    "GET /api/policies -": "401M 200:A 200:A 200:A 200:AB",
    "GET /api/policies/{v} A": "401M 200:A 200:A 200:A 200:A",
    "GET /api/policies/{v} B": "401M 401V 401V 401V 200:B",
    "GET /api/policies/{v}/p A": "401M 401O 200:A 401O 200:A",
    "GET /api/policies/{v}/p B": "401M 401O 401O 401O 200:B",
    "PUT /api/policies/{v}/sp A": "401M 401O 201 401O 201",
    "PUT /api/policies/{v}/sp B": "401M 401O 401O 401O 201",
    "DELETE /api/policies/{v}/sp A": "401M 401O 204 401O 204",
    "DELETE /api/policies/{v}/sp B": "401M 401O 401O 401O 204",
    "GET /api/definitions -": "401M 401A 401A 401A 200:AB",
    "POST /api/definitions -": "401M 401A 401A 401A 204",
    "GET /api/definitions/{v} A": "401M 401A 401A 401A 200:A",
    "GET /api/definitions/{v} B": "401M 401A 401A 401A 200:B",
    "POST /api/definitions/{v} A": "401M 401A 401A 401A 204",
    "POST /api/definitions/{v} B": "401M 401A 401A 401A 204",
    "POST /api/exchanges/{v}/x/publish A": "401M 200 200 200 200",
    "POST /api/exchanges/{v}/x/publish B": "401M 401V 401V 401V 401R",
    "POST /api/queues/{v}/q/get A": "401M 200 200 200 200",
    "GET /api/queues/{v}/q/peek A": "401M 200 200 200 200",  # as get
    "POST /api/queues/{v}/q/get B": "401M 401V 401V 401V 401R",
    "GET /api/queues/{v}/q/peek B": "401M 401V 401V 401V 401R",  # as get
    "GET /api/aliveness-test/{v} A": "401M 200 200 200 200",
    "GET /api/aliveness-test/{v} B": "401M 401V 401V 401V 401R",
}


def fill(value: Any, fields: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**fields)
    if isinstance(value, dict):
        return {k: fill(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, fields) for v in value]
    return value


def mentions(value: Any, name: str) -> bool:
    if isinstance(value, str):
        return value == name
    if isinstance(value, dict):
        return any(mentions(v, name) for v in value.values())
    if isinstance(value, list):
        return any(mentions(v, name) for v in value)
    return False


def wait_for_one(fetch: Any, timeout: float = 15.0) -> Any:
    """The first item ``fetch()`` lists (RabbitMQ lists new connections after a moment)."""
    deadline = time.monotonic() + timeout
    while not (items := fetch()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert items, "nothing appeared"
    return items[0]


def close_quietly(client: pika.BlockingConnection) -> None:
    """Close a client connection, or finish closing one a case closed from the broker."""
    with contextlib.suppress(pika.exceptions.AMQPError):
        client.close()


class World:
    """Vhosts A and B with the same objects in each (queue q, exchange x, binding x->q "k",
    policy p, a connection with a channel consuming from q), users of every tag with
    permissions in A only, and the scratch objects the mutating cases change, on one
    broker; ``answers(case)`` asks the case as each tag's user."""

    def __init__(self, api: Api, host: str, port: int, stream_port: int | None = None
                 ) -> None:
        self.api = api
        self.host, self.port = host, port
        self.stream_port = stream_port  # None: no stream protocol (no {sconn} cases)
        self.stream_clients: dict[str, StreamClient] = {}
        self.stream_connection_names: dict[str, str] = {}
        run = uuid.uuid4().hex[:8]
        self.vhosts = {"A": f"authz-a-{run}", "B": f"authz-b-{run}"}
        self.scratch_vhosts = {"A": f"authz-sa-{run}", "B": f"authz-sb-{run}"}
        self.users = {tag: f"authz-{tag}-{run}" for tag in TAGS}
        self.victim, self.grantee, self.scratch_user = (
            f"authz-{role}-{run}" for role in ("victim", "grantee", "su"))
        self.clients: dict[str, pika.BlockingConnection] = {}
        self.connection_names: dict[str, str] = {}
        self.channel_names: dict[str, str] = {}
        self.exists: dict[tuple[str, str], bool] = {}
        overview = self.guest("GET", "/api/overview").json
        self.node = overview["node"]
        self.cluster = self.guest("GET", "/api/cluster-name").json["name"]

    def guest(self, method: str, path: str, body: Any = None) -> Reply:
        reply = self.api.call(method, path, body)
        assert reply.status < 300, (method, path, reply)
        return reply

    def build(self) -> None:
        for tag, name in self.users.items():
            self.guest("PUT", f"/api/users/{name}",
                       {"password": PASSWORD, "tags": "" if tag == "none" else tag})
        for name in (self.victim, self.grantee):
            self.guest("PUT", f"/api/users/{name}", {"password": PASSWORD, "tags": ""})
        self.guest("PUT", f"/api/user-limits/{self.victim}/max-connections", {"value": 100})
        for variant, vhost in self.vhosts.items():
            v = q(vhost)
            self.guest("PUT", f"/api/vhosts/{v}", {})
            for user in ("guest", self.victim) + (
                    tuple(self.users.values()) if variant == "A" else ()):
                self.guest("PUT", f"/api/permissions/{v}/{user}", ALL)
            self.guest("PUT", f"/api/topic-permissions/{v}/{self.victim}", TOPIC)
            self.guest("PUT", f"/api/vhost-limits/{v}/max-connections", {"value": 100})
            self.guest("PUT", f"/api/queues/{v}/q", {})
            self.guest("PUT", f"/api/exchanges/{v}/x", {"type": "direct"})
            self.guest("POST", f"/api/bindings/{v}/e/x/q/q", {"routing_key": "k"})
            self.guest("PUT", f"/api/policies/{v}/p", POLICY)
            if self.api.get("/api/shovels").status == 200:  # a broker with shovels
                self.guest("PUT", f"/api/parameters/shovel/{v}/sh", {"value": SHOVEL})
            if self.api.get("/api/federation-links").status == 200:  # with federation
                self.guest("PUT", f"/api/parameters/federation-upstream/{v}/fu",
                           {"value": UPSTREAM})
                self.guest("PUT", f"/api/parameters/federation-upstream-set/{v}/fs",
                           {"value": UPSTREAM_SET})
            self.connect(variant)
            if self.stream_port is not None:
                self.guest("PUT", f"/api/queues/{v}/s",
                           {"durable": True, "arguments": {"x-queue-type": "stream"}})
                self.connect_stream(variant)

    def tear_down(self) -> None:
        for client in self.clients.values():
            close_quietly(client)
        for stream_client in self.stream_clients.values():
            stream_client.close()
        for vhost in (*self.vhosts.values(), *self.scratch_vhosts.values()):
            self.api.delete(f"/api/vhosts/{q(vhost)}")
        for user in (*self.users.values(), self.victim, self.grantee, self.scratch_user):
            self.api.delete(f"/api/users/{user}")

    def connect(self, variant: str) -> None:
        """A connection as guest in the variant's vhost, its channel consuming from q."""
        vhost = self.vhosts[variant]
        old = self.connection_names.get(variant)
        if variant in self.clients:
            close_quietly(self.clients[variant])
        client = pika.BlockingConnection(pika.ConnectionParameters(
            self.host, self.port, vhost, pika.PlainCredentials("guest", "guest")))
        client.channel().basic_consume("q", lambda *_: None, auto_ack=True)
        self.clients[variant] = client
        connection = wait_for_one(lambda: [
            c for c in self.guest("GET", f"/api/vhosts/{q(vhost)}/connections").json
            if c["name"] != old and c["protocol"] != "stream"])
        self.connection_names[variant] = connection["name"]
        channel = wait_for_one(lambda: self.guest(
            "GET", f"/api/connections/{q(connection['name'])}/channels").json)
        self.channel_names[variant] = channel["name"]
        # RabbitMQ shows a channel's details once its first statistics arrive
        wait_for_one(lambda: [
            r for r in [self.api.get(f"/api/channels/{q(channel['name'])}")]
            if r.status == 200])
        wait_for_one(lambda: self.guest("GET", f"/api/consumers/{q(vhost)}").json)

    def connect_stream(self, variant: str) -> None:
        """A stream-protocol connection as guest in the variant's vhost, with a publisher
        and a subscription on its stream s."""
        assert self.stream_port is not None
        vhost = self.vhosts[variant]
        old = self.stream_connection_names.get(variant)
        if variant in self.stream_clients:
            self.stream_clients[variant].close()
        client = StreamClient(self.host, self.stream_port, vhost, name=f"authz-{variant}")
        client.declare_publisher(0, "s", "authz")
        client.subscribe(0, "s")
        self.stream_clients[variant] = client
        connection = wait_for_one(lambda: [
            c for c in self.guest("GET", f"/api/stream/connections/{q(vhost)}").json
            if c["name"] != old])
        self.stream_connection_names[variant] = connection["name"]
        # RabbitMQ lists publishers and consumers once the connection's statistics arrive
        wait_for_one(lambda: self.guest("GET", f"/api/stream/publishers/{q(vhost)}").json)
        wait_for_one(lambda: self.guest("GET", f"/api/stream/consumers/{q(vhost)}").json)

    def fields(self, variant: str) -> dict[str, str]:
        named = variant if variant in self.vhosts else "A"
        return {"v": q(self.vhosts[named]), "sv": q(self.scratch_vhosts[named]),
                "conn": q(self.connection_names[named]),
                "sconn": q(self.stream_connection_names.get(named, "")),
                "chan": q(self.channel_names[named]), "victim": self.victim,
                "grantee": self.grantee, "su": self.scratch_user, "node": q(self.node),
                "cluster": self.cluster, "port": str(self.port)}

    def make(self, scratch: str, variant: str, exists: bool) -> None:
        """Create or remove a scratch object as guest, unless it already is that way."""
        connections = ("connection", "stream-connection")
        if self.exists.get((scratch, variant), scratch in connections) == exists:
            return
        if scratch == "connection":  # only the cases remove it
            self.connect(variant)
        elif scratch == "stream-connection":
            self.connect_stream(variant)
        elif scratch == "vhost":
            self.make_scratch_vhost(variant, exists)
        else:
            method, path, body = {
                "user": ("PUT", "/api/users/{su}", {"password": PASSWORD, "tags": ""}),
                "permission": ("PUT", "/api/permissions/{v}/{grantee}", ALL),
                "topic-permission": ("PUT", "/api/topic-permissions/{v}/{grantee}", TOPIC),
                "exchange": ("PUT", "/api/exchanges/{v}/sx", {"type": "direct"}),
                "queue": ("PUT", "/api/queues/{v}/sq", {}),
                "policy": ("PUT", "/api/policies/{v}/sp", POLICY),
                "shovel": ("PUT", "/api/parameters/shovel/{v}/ssh", {"value": SHOVEL}),
                "upstream": ("PUT", "/api/parameters/federation-upstream/{v}/sfu",
                             {"value": UPSTREAM}),
                "upstream-set": ("PUT", "/api/parameters/federation-upstream-set/{v}/sfs",
                                 {"value": UPSTREAM_SET}),
                "binding": ("POST", "/api/bindings/{v}/e/x/q/q", {"routing_key": "sk"}),
            }[scratch]
            if not exists:
                method, body = "DELETE", None
                if scratch == "binding":
                    path += "/sk"
            self.guest(method, fill(path, self.fields(variant)), body)
        self.exists[scratch, variant] = exists

    def make_scratch_vhost(self, variant: str, exists: bool) -> None:
        v = q(self.scratch_vhosts[variant])
        if not exists:
            self.guest("DELETE", f"/api/vhosts/{v}")
            return
        self.guest("PUT", f"/api/vhosts/{v}", {})
        if variant == "A":
            for user in self.users.values():
                self.guest("PUT", f"/api/permissions/{v}/{user}", ALL)

    def answers(self, case: Case, variant: str) -> str:
        """The answers to ``case`` for each tag's user, as EXPECTED writes them."""
        answers = []
        for tag in TAGS:
            if case.scratch:
                self.make(case.scratch, variant, case.exists)
            fields = self.fields(variant)
            reply = self.api.call(case.method, fill(case.path, fields),
                                  fill(case.body, fields), user=self.users[tag],
                                  password=PASSWORD)
            if case.scratch and 200 <= reply.status < 300:
                self.exists[case.scratch, variant] = not case.exists
            answers.append(self.answer(reply))
        if case.scratch in ("connection", "stream-connection"):  # the reads after need it
            self.make(case.scratch, variant, True)
        return " ".join(answers)

    def answer(self, reply: Reply) -> str:
        content_type = reply.header("Content-Type") or ""
        if reply.status == 401:
            reason = reply.json["reason"]
            return "401" + REFUSALS.get(reason, f"({reason})")
        if reply.status != 200 or not content_type.startswith("application/json"):
            return str(reply.status)
        seen = "".join(label for label, name in self.vhosts.items()
                       if mentions(reply.json, name))
        return f"200:{seen}" if seen else "200"


def run_matrix(world: World, cases: list[Case]) -> dict[str, str]:
    return {one.key(variant): world.answers(one, variant)
            for one in cases for variant in one.variants}


def differences(got: dict[str, str]) -> list[str]:
    return [f"{key}: got {answer!r}, expected {EXPECTED.get(key)!r}"
            for key, answer in got.items() if EXPECTED.get(key) != answer]


def as_table(got: dict[str, str]) -> str:
    return "\n".join(f"    {key!r}: {answer!r}," for key, answer in got.items())


def world_on(api: Api, host: str, port: int, stream_port: int | None = None
             ) -> Iterator[World]:
    world = World(api, host, port, stream_port)
    try:
        world.build()
        yield world
    finally:
        world.tear_down()


@pytest.fixture(scope="module")
def leveret_world(api: Api) -> Iterator[World]:
    assert api.amqp_port is not None
    yield from world_on(api, "127.0.0.1", api.amqp_port, api.stream_port)


@pytest.fixture(scope="module")
def reference_world(reference: Api) -> Iterator[World]:
    amqp = pika.URLParameters(REFERENCE_AMQP)
    yield from world_on(reference, amqp.host, amqp.port,
                        REFERENCE_STREAM_PORT if STREAM_PLUGIN else None)


def test_every_route_has_cases() -> None:
    app = create_app(Node())
    registered = {(r.method, r.resource.canonical) for r in app.router.routes()
                  if r.method != "HEAD" and r.resource is not None
                  and r.resource.canonical not in NOT_API}
    assert registered == {(c.method, c.route) for c in CASES}
    assert set(EXPECTED) == {c.key(variant) for c in CASES for variant in c.variants}


def test_leveret_answers_as_rabbitmq(leveret_world: World) -> None:
    problems = differences(run_matrix(leveret_world, CASES))
    assert not problems, "\n".join(problems)


def test_reference_still_answers_as_recorded(reference_world: World) -> None:
    got = run_matrix(reference_world, [c for c in CASES if not c.leveret_only])
    problems = differences(got)
    assert not problems, "\n".join(problems) + "\n\nthe reference now:\n" + as_table(got)
