"""Hostile requests to the management API, over real HTTP to a served broker: each gets a
4xx with a reason, changes nothing, and cannot make the broker read a large body.

The broker here takes messages of at most 1 MiB, so the publish bound (the payload in
base64 plus 1 MiB) is small enough to cross in a test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from mgmt_helpers import Api, Reply, unique

from leveret.broker.node import Limits
from leveret.management.server_log import OnceInAWhile
from leveret.runtime.threaded import BrokerThread

MAX_MESSAGE = 1 << 20
QUEUE = "hostile-q"


@pytest.fixture(scope="module")
def served() -> Iterator[BrokerThread]:
    with BrokerThread(management_port=0, limits=Limits(max_message_size=MAX_MESSAGE)) as b:
        yield b


@pytest.fixture(scope="module")
def api(served: BrokerThread) -> Api:
    api = Api(served.broker.management_url)
    api.ok("PUT", f"/api/queues/%2F/{QUEUE}", {"durable": False})
    return api


def state(api: Api) -> dict[str, Any]:
    """All an API request could change: definitions (users, vhosts, permissions, limits,
    policies, queues, exchanges, bindings), the cluster name and the queue's messages."""
    return {"definitions": api.get("/api/definitions").json,
            "cluster": api.get("/api/cluster-name").json,
            "messages": api.get(f"/api/queues/%2F/{QUEUE}").json["messages"]}


def raw_request(served: BrokerThread, head: str, body: bytes = b"",
                timeout: float = 5.0) -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, without the blank line) and ``body`` over
    a plain socket; the status and body of the answer, read until the server closes or
    goes quiet."""
    port = served.broker.management.port
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n")
        with contextlib.suppress(OSError):  # the server may stop reading once it answered
            sock.sendall(body)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer) < _expected(answer):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except TimeoutError:
            pass
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _expected(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(answer) + 1


def authorised(head: str) -> str:
    token = base64.b64encode(b"guest:guest").decode()
    return f"{head}\r\nHost: localhost\r\nAuthorization: Basic {token}"


# -- bodies too deep, of the wrong type ---------------------------------------------------------

def routes_with_a_body(served: BrokerThread) -> list[tuple[str, str]]:
    """(method, path) of every PUT and POST route of the served app, its placeholders
    filled with things that exist (so the handler gets as far as reading the body)."""
    values = {"vhost": "%2F", "user": "guest", "name": QUEUE, "source": "amq.direct",
              "kind": "q", "destination": QUEUE}
    found = []
    for route in served.broker.management.app.router.routes():
        if route.method in ("PUT", "POST"):
            found.append((route.method, route.resource.canonical.format_map(values)))
    return sorted(set(found))


def test_every_route_with_a_body_is_found(served: BrokerThread, api: Api) -> None:
    paths = {path for _, path in routes_with_a_body(served)}
    assert {"/api/users/guest", "/api/definitions", "/api/users/bulk-delete",
            f"/api/exchanges/%2F/{QUEUE}/publish"} <= paths
    assert len(paths) >= 17


def test_json_nested_100000_deep_is_refused_on_every_route(served: BrokerThread,
                                                           api: Api) -> None:
    deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    before = state(api)
    for method, path in routes_with_a_body(served):
        reply = api.call(method, path, raw=deep)
        assert reply.status == 400, (method, path, reply)
        assert "nested deeper than" in reply.json["reason"], (method, path, reply)
    assert state(api) == before


def test_argument_tables_nested_300_deep_are_refused(api: Api) -> None:
    nested: Any = 1
    for _ in range(300):
        nested = {"a": nested}
    name = unique("hostile-deep")
    before = state(api)
    for method, path, body in (
            ("PUT", f"/api/queues/%2F/{name}", {"arguments": {"x-deep": nested}}),
            ("PUT", f"/api/exchanges/%2F/{name}", {"arguments": {"x-deep": nested}}),
            ("POST", f"/api/bindings/%2F/e/amq.direct/q/{QUEUE}",
             {"routing_key": name, "arguments": {"x-deep": nested}}),
            ("POST", "/api/exchanges/%2F/amq.default/publish",
             {"properties": {"headers": {"deep": nested}}, "routing_key": QUEUE,
              "payload": "x", "payload_encoding": "string"})):
        reply = api.call(method, path, body)
        assert reply.status == 400 and "nested" in reply.json["reason"], (path, reply)
    assert state(api) == before


WRONG_TYPES: list[tuple[str, str, Any, Any]] = [
    # method, path, body, the reason (a string: contained in it; else equal)
    ("PUT", "/api/users/hostile-u", {"tags": 5}, "tags must be"),
    ("PUT", "/api/users/hostile-u", {"tags": ["a", 5]}, "tags must be"),
    ("PUT", "/api/users/hostile-u", {"tags": {"a": 1}}, "tags must be"),
    ("PUT", "/api/users/hostile-u", {"tags": "", "password": None}, "password must be"),
    ("PUT", "/api/users/hostile-u", {"tags": "", "password_hash": "!!"}, ["not_base64", "!!"]),
    ("PUT", "/api/users/hostile-u", {"tags": "", "password": "p", "hashing_algorithm": []},
     "hashing_algorithm must be"),
    ("PUT", "/api/vhosts/hostile-v", {"tags": 5}, "tags must be"),
    ("PUT", "/api/vhosts/hostile-v", {"description": [1]}, "description must be"),
    ("PUT", "/api/vhosts/hostile-v", {"default_queue_type": {}}, "default_queue_type must be"),
    ("PUT", "/api/exchanges/%2F/hostile-x", {"durable": 5}, ["not_boolean", 5]),
    ("PUT", "/api/exchanges/%2F/hostile-x", {"internal": None}, ["not_boolean", None]),
    ("PUT", "/api/exchanges/%2F/hostile-x", {"type": []}, "type must be"),
    ("PUT", "/api/exchanges/%2F/hostile-x", {"arguments": 5}, "arguments must be an object"),
    ("PUT", "/api/queues/%2F/hostile-q2", {"auto_delete": "x"}, ["not_boolean", "x"]),
    ("PUT", "/api/queues/%2F/hostile-q2", {"arguments": [1]}, "arguments must be an object"),
    ("PUT", "/api/queues/%2F/hostile-q2", {"arguments": {"x-big": 1 << 70}}, "out of range"),
    ("POST", f"/api/bindings/%2F/e/amq.direct/q/{QUEUE}", {"routing_key": None},
     "routing_key must be"),
    ("POST", f"/api/bindings/%2F/e/amq.direct/q/{QUEUE}", {"arguments": "x"},
     "arguments must be an object"),
    ("PUT", "/api/permissions/%2F/guest", {"configure": None, "write": ".*", "read": ".*"},
     "configure must be"),
    ("PUT", "/api/topic-permissions/%2F/guest",
     {"exchange": {}, "write": ".*", "read": ".*"}, "exchange must be"),
    ("PUT", "/api/user-limits/guest/max-connections", {"value": "x"}, "must be an integer"),
    ("PUT", "/api/vhost-limits/%2F/max-queues", {"value": [1]}, "must be an integer"),
    ("PUT", "/api/policies/%2F/hostile-p", {"pattern": [], "definition": {"max-length": 1}},
     "pattern must be"),
    ("PUT", "/api/policies/%2F/hostile-p",
     {"pattern": ".*", "definition": {"max-length": 1}, "priority": "x"},
     ["not_integer", "x"]),
    ("PUT", "/api/policies/%2F/hostile-p",
     {"pattern": ".*", "definition": {"max-length": 1}, "apply-to": 5}, "apply-to"),
    ("PUT", "/api/policies/%2F/hostile-p", {"pattern": ".*", "definition": 5}, "definition"),
    ("PUT", "/api/cluster-name", {"name": None}, "name must be"),
    ("POST", "/api/users/bulk-delete", {"users": 5}, "users must be a list of strings"),
    ("POST", "/api/users/bulk-delete", {"users": [5]}, "users must be a list of strings"),
    ("POST", f"/api/queues/%2F/{QUEUE}/actions", {"action": 5}, "unknown action"),
    ("POST", f"/api/queues/%2F/{QUEUE}/get",
     {"count": "x", "ackmode": "ack_requeue_true", "encoding": "auto"}, ["not_integer", "x"]),
    ("POST", f"/api/queues/%2F/{QUEUE}/get",
     {"count": 1, "ackmode": 5, "encoding": "auto"}, "ackmode"),
    ("POST", f"/api/queues/%2F/{QUEUE}/get",
     {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": "x"},
     "truncate"),
    *[("POST", "/api/exchanges/%2F/amq.default/publish",
       {"properties": {}, "routing_key": QUEUE, "payload": "x", "payload_encoding": "string",
        **change}, reason) for change, reason in (
        ({"payload": 5}, "payload_not_string"),
        ({"routing_key": None}, "routing_key must be"),
        ({"properties": 5}, "properties must be an object"),
        ({"properties": {"headers": 5}}, "headers must be an object"),
        ({"properties": {"priority": 999}}, "priority must be between 0 and 255"),
        ({"properties": {"delivery_mode": "x"}}, ["not_integer", "x"]),
        ({"properties": {"timestamp": -1}}, "timestamp must be between"),
        ({"properties": {"content_type": "x" * 300}}, "invalid properties"),
        ({"payload_encoding": "base64", "payload": "***"}, "not valid base64"))],
    ("POST", "/api/definitions", {"vhosts": 5}, "vhosts must be a list of objects"),
    ("POST", "/api/definitions/%2F", {"queues": [{"name": QUEUE, "durable": "x"}]},
     "durable must be true or false"),
]


@pytest.mark.parametrize(("method", "path", "body", "reason"), WRONG_TYPES)
def test_a_wrong_type_is_refused_and_changes_nothing(api: Api, method: str, path: str,
                                                     body: Any, reason: Any) -> None:
    before = state(api)
    reply = api.call(method, path, body)
    assert reply.status == 400, reply
    assert reply.json["error"] == "bad_request"
    if isinstance(reason, str):
        assert reason in json.dumps(reply.json["reason"]), reply.json
    else:
        assert reply.json["reason"] == reason
    assert state(api) == before


def test_bulk_delete_with_a_string_deletes_nothing(api: Api) -> None:
    """{"users": "guest"} deleted the users g, u, e, s and t, one per letter."""
    for letter in "guest":
        api.ok("PUT", f"/api/users/{letter}", {"password": "p", "tags": ""})
    before = state(api)
    reply = api.post("/api/users/bulk-delete", {"users": "guest"})
    assert reply.status == 400 and "users must be a list of strings" in reply.json["reason"]
    assert state(api) == before
    assert all(api.get(f"/api/users/{letter}").status == 200 for letter in "guest")
    api.ok("POST", "/api/users/bulk-delete", {"users": list("guest")})


def test_reasons_match_rabbitmq_where_it_has_one(api: Api, reference: Api) -> None:
    name = unique("bodies-hostile")
    try:
        reference.ok("PUT", f"/api/queues/%2F/{name}", {})
        for method, path, body in (
                ("PUT", f"/api/exchanges/%2F/{name}", {"durable": 5}),
                ("PUT", f"/api/queues/%2F/{name}-2", {"auto_delete": "x"}),
                ("POST", f"/api/queues/%2F/{name}/get",
                 {"count": "x", "ackmode": "ack_requeue_true", "encoding": "auto"}),
                ("POST", "/api/exchanges/%2F/amq.default/publish",
                 {"properties": {}, "routing_key": name, "payload": 5,
                  "payload_encoding": "string"})):
            ours = api.call(method, path.replace(name, QUEUE), body)
            theirs = reference.call(method, path, body)
            assert (ours.status, ours.json) == (theirs.status, theirs.json), (path, theirs)
    finally:
        for path in (f"/api/queues/%2F/{name}", f"/api/exchanges/%2F/{name}",
                     f"/api/queues/%2F/{name}-2"):
            reference.delete(path)


# -- definitions: all or nothing ---------------------------------------------------------------

def test_a_bad_item_late_in_an_import_leaves_nothing_applied(api: Api) -> None:
    name = unique("hostile-defs")
    good_queue = {"name": f"{name}-q", "vhost": name, "durable": True, "auto_delete": False,
                  "arguments": {}}
    documents = [
        {"users": [{"name": name, "password_hash": "", "tags": ""}],
         "vhosts": [{"name": name}],
         "permissions": [{"user": name, "vhost": name, "configure": ".*", "write": ".*",
                          "read": ".*"}],
         "queues": [good_queue, {**good_queue, "name": f"{name}-bad", "durable": "yes"}]},
        {"vhosts": [{"name": name}], "queues": [good_queue],
         "bindings": [{"source": "amq.direct", "vhost": name, "destination": "missing",
                       "destination_type": "queue", "routing_key": "", "arguments": {}}]},
        {"users": [{"name": name, "password_hash": "", "tags": ""}],
         "policies": [{"vhost": "/", "name": name, "pattern": ".*",
                       "definition": {"max-length": "many"}}]},
        {"users": [{"name": name, "password_hash": "", "tags": ""}],
         "permissions": [{"user": name, "vhost": "no-such-vhost", "configure": ".*",
                          "write": ".*", "read": ".*"}]},
        {"vhosts": [{"name": name}], "exchanges": [{"name": name, "vhost": name,
                                                    "type": "no-such-type"}]},
    ]
    before = state(api)
    for document in documents:
        reply = api.post("/api/definitions", document)
        assert reply.status == 400 and reply.json["reason"], (document, reply)
        assert state(api) == before, document
    assert api.get(f"/api/users/{name}").status == 404
    assert api.get(f"/api/vhosts/{name}").status == 404


def test_a_valid_import_still_applies_whole(api: Api) -> None:
    name = unique("hostile-defs-ok")
    document = {
        "users": [{"name": name, "password_hash": "", "tags": "monitoring"}],
        "vhosts": [{"name": name}],
        "permissions": [{"user": name, "vhost": name, "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "queues": [{"name": "q", "vhost": name, "durable": True, "auto_delete": False,
                    "arguments": {"x-max-length": 5}}],
        "exchanges": [{"name": "x", "vhost": name, "type": "topic", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "bindings": [{"source": "x", "vhost": name, "destination": "q",
                      "destination_type": "queue", "routing_key": "#", "arguments": {}}]}
    assert api.post("/api/definitions", document).status == 204
    assert api.get(f"/api/queues/{name}/q").json["arguments"] == {"x-max-length": 5}
    assert len(api.get(f"/api/bindings/{name}/e/x/q/q").json) == 1
    api.ok("DELETE", f"/api/vhosts/{name}")
    api.ok("DELETE", f"/api/users/{name}")


# -- bodies too large ------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "size"), [
    ("POST", "/api/exchanges/%2F/amq.default/publish", 200 << 20),
    ("PUT", "/api/vhosts/hostile-big", 2 << 20),
    ("POST", "/api/definitions", 64 << 20),
])
def test_a_large_content_length_is_refused_before_the_body_is_sent(
        served: BrokerThread, api: Api, method: str, path: str, size: int) -> None:
    """Only the headers go: the answer comes without the broker waiting for the body."""
    before = state(api)
    head = authorised(f"{method} {path} HTTP/1.1") + \
        f"\r\nContent-Type: application/json\r\nContent-Length: {size}"
    status, body = raw_request(served, head)
    assert status == 413
    answer = json.loads(body)
    assert answer["error"] == "payload_too_large" and str(size) in answer["reason"]
    if path.endswith("/publish"):
        assert f"configured max size {MAX_MESSAGE}" in answer["reason"]
    assert state(api) == before


def test_expect_100_continue_is_refused_before_the_body(served: BrokerThread) -> None:
    head = authorised("POST /api/exchanges/%2F/amq.default/publish HTTP/1.1") + \
        f"\r\nContent-Type: application/json\r\nContent-Length: {200 << 20}" \
        "\r\nExpect: 100-continue"
    status, body = raw_request(served, head)
    assert status == 413 and b"configured max size" in body


def test_a_chunked_body_is_refused_once_past_the_bound(served: BrokerThread,
                                                      api: Api) -> None:
    before = state(api)
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(40)) + b"0\r\n\r\n"
    head = authorised("PUT /api/vhosts/hostile-chunked HTTP/1.1") + \
        "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
    status, answer = raw_request(served, head, body)
    assert status == 413 and json.loads(answer)["error"] == "payload_too_large"
    assert state(api) == before


def test_a_payload_over_max_message_size_gets_the_amqp_text(api: Api) -> None:
    """Within the body's bound (base64 is 4/3 of it) but over the message size."""
    before = state(api)
    payload = base64.b64encode(b"\0" * (MAX_MESSAGE + 1)).decode()
    reply = api.post("/api/exchanges/%2F/amq.default/publish", {
        "properties": {}, "routing_key": QUEUE, "payload": payload,
        "payload_encoding": "base64"})
    assert reply.status == 413
    assert reply.json["reason"] == (f"PRECONDITION_FAILED - message size {MAX_MESSAGE + 1} "
                                    f"is larger than configured max size {MAX_MESSAGE}")
    assert state(api) == before
    exactly = base64.b64encode(b"\0" * MAX_MESSAGE).decode()
    reply = api.post("/api/exchanges/%2F/amq.default/publish", {
        "properties": {}, "routing_key": QUEUE, "payload": exactly,
        "payload_encoding": "base64"})
    assert reply.json == {"routed": True}
    api.ok("DELETE", f"/api/queues/%2F/{QUEUE}/contents")


# -- paths, URLs and headers: 4xx, and no traceback in the log -----------------------------------

def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("path", ["/index.html%00.js", "/%00", "/" + "a" * 300,
                                  "/js/" + "b" * 5000 + ".js"])
def test_paths_no_file_can_have_are_404(served: BrokerThread, api: Api, path: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(3):
        assert api.get(path, user="").status == 404
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("head", [
    "GET /" + "a" * 100_000 + " HTTP/1.1\r\nHost: localhost",
    "GET /api/overview HTTP/1.1\r\nHost: localhost\r\nX-Big: " + "b" * 100_000,
    "GET /api/overview HTTP/1.1\r\nHost: localhost" + "".join(
        f"\r\nX-{n}: {n}" for n in range(1000)),
])
def test_oversized_urls_and_headers_get_400_and_a_rare_line(
        served: BrokerThread, head: str, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(20):
        status, _ = raw_request(served, head)
        assert status == 400
    assert errors_logged(caplog) == []
    server_lines = [r for r in caplog.records if r.name == "leveret.management.server"]
    assert len(server_lines) <= 1


def test_the_server_log_lets_a_line_through_now_and_then() -> None:
    now = [100.0]
    once = OnceInAWhile(interval=10.0, clock=lambda: now[0])

    def record() -> logging.LogRecord:
        return logging.LogRecord("leveret.management.server", logging.ERROR, __file__, 1,
                                 "Error handling request from %s", ("10.0.0.1",), None)

    assert once.filter(record())
    assert not any(once.filter(record()) for _ in range(4))
    now[0] += 10.0
    passed = record()
    assert once.filter(passed)
    assert passed.getMessage() == ("Error handling request from 10.0.0.1 "
                                   "(4 more since, not logged)")


def test_refusals_are_json_to_the_management_client(api: Api) -> None:
    """The refusals read as every other error of the API: JSON with error and reason."""
    reply: Reply = api.call("PUT", "/api/vhosts/hostile-big", raw=b" " * (2 << 20))
    assert reply.status == 413
    assert reply.json == {"error": "payload_too_large",
                          "reason": f"request body of {2 << 20} bytes or more is larger "
                                    f"than this endpoint accepts ({1 << 20} bytes)"}
