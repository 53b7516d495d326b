"""The helpers applications use in their own tests, and the package's import surface."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import leveret.events
from leveret.cli.main import main
from leveret.events import EventBus, RetryPolicy
from leveret.events.testing import bus_under_test, eventually

ROOT = Path(__file__).resolve().parents[2]


async def test_events_broker_fixture_runs_real_retries(events_broker) -> None:
    bus = EventBus(exchange="app")
    attempts: list[int] = []

    @bus.subscribe("t", group="app-group", retry=RetryPolicy(max_attempts=2,
                                                            initial_delay=0.01))
    async def flaky(e: dict, d: leveret.events.Delivery) -> None:
        attempts.append(d.attempt)
        if d.attempt == 1:
            raise RuntimeError("once")

    async with bus_under_test(bus, events_broker.url):
        await bus.publish({}, routing_key="t")
        await eventually(lambda: attempts == [1, 2])


async def test_eventually_reports_a_timeout() -> None:
    with pytest.raises(AssertionError, match="still false"):
        await eventually(lambda: False, timeout=0.05)


def test_every_public_name_resolves_lazily() -> None:
    from leveret.events import _HOME

    assert set(_HOME) == set(leveret.events.__all__)
    assert set(leveret.events.__all__) <= set(dir(leveret.events))
    with pytest.raises(AttributeError):
        leveret.events.NotAThing  # noqa: B018


def test_leveret_cli_does_not_load_the_events_dependencies() -> None:
    code = ("import sys; from leveret.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('aio_pika', 'pydantic', 'prometheus_client') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_docs_command_writes_asyncapi(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    target = tmp_path / "asyncapi.json"
    assert main(["events", "docs", "examples.orders.app:bus", "-o", str(target),
                 "--title", "Orders"]) == 0
    doc = json.loads(target.read_text())
    assert doc["info"] == {"title": "Orders", "version": "1.0.0"}
    assert set(doc["channels"]) >= {"orders.placed", "payments.captured", "rpc.pricing.quote"}
    assert doc["operations"]["fraud-check.receive"]["x-retry"]["maxAttempts"] == 3
    placed = doc["components"]["messages"]["OrderPlaced"]
    assert placed["payload"]["properties"]["quantity"]["exclusiveMinimum"] == 0
    assert placed["summary"] == "A customer placed an order."


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def check_asyncapi_3(doc: dict[str, Any]) -> None:
    """The AsyncAPI 3.0.0 rules (its JSON Schema, spec-json-schemas 3.0.0.json) that the
    generated document could break: keys, references that resolve, channels whose
    messages are references to components, operations whose (reply) messages are a subset
    of their channel's, and reply addresses that are runtime expressions."""
    assert doc["asyncapi"] == "3.0.0" and {"title", "version"} <= set(doc["info"])
    key = re.compile(r"^[\w\d.\-_]+$")
    for section in ("messages", "schemas"):
        assert all(key.match(k) for k in doc["components"][section]), section
    for name, channel in doc["channels"].items():
        assert key.match(name) and set(channel) <= {
            "address", "messages", "title", "summary", "description", "bindings"}, name
        assert channel["address"] is None or isinstance(channel["address"], str)
        assert channel.get("messages"), f"channel {name} lists no message"
        for ref in channel["messages"].values():
            assert set(ref) == {"$ref"} and ref["$ref"].startswith("#/components/messages/")
            assert "payload" in _resolve(doc, ref["$ref"])
    for name, op in doc["operations"].items():
        assert key.match(name) and op["action"] in ("send", "receive"), name
        channel = op["channel"]["$ref"]
        for ref in op.get("messages", []):
            assert ref["$ref"].startswith(channel + "/messages/"), (name, ref)
        reply = op.get("reply")
        if reply is not None:
            assert set(reply) <= {"address", "channel", "messages"}
            assert re.match(r"^\$message\.(header|payload)#(/(([^/~])|(~[01]))*)*",
                            reply["address"]["location"])
            assert reply["messages"], f"operation {name}: no reply message"
            for ref in reply["messages"]:
                assert ref["$ref"].startswith(reply["channel"]["$ref"] + "/messages/")
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc))
    for ref in refs:  # every reference resolves inside the document
        _resolve(doc, ref)


def test_asyncapi_of_the_orders_example_has_the_rpc_reply(tmp_path: Path,
                                                           monkeypatch) -> None:
    """The pricing.quote responder answers a QuoteRequest with a Quote: both messages are
    in the document with their schemas, the request on the responder's queue and the reply
    on the reply channel, which the operation's reply names."""
    monkeypatch.chdir(ROOT)
    target = tmp_path / "asyncapi.json"
    assert main(["events", "docs", "examples.orders.app:bus", "-o", str(target)]) == 0
    doc = json.loads(target.read_text())
    check_asyncapi_3(doc)
    messages = doc["components"]["messages"]
    quote = messages["Quote"]["payload"]
    assert quote["required"] == ["sku", "quantity", "total"]
    assert quote["properties"]["total"]["type"] == "number"
    assert messages["QuoteRequest"]["payload"]["properties"]["sku"]["type"] == "string"
    op = doc["operations"]["respond.pricing.quote"]
    assert op["action"] == "receive" and op["channel"] == {"$ref": "#/channels/rpc.pricing.quote"}
    assert [_resolve(doc, _resolve(doc, r["$ref"])["$ref"])["name"]
            for r in op["messages"]] == ["QuoteRequest"]
    reply_channel = _resolve(doc, op["reply"]["channel"]["$ref"])
    assert reply_channel["address"] is None  # the requester's reply_to, known at run time
    assert reply_channel["messages"] == {"reply": {"$ref": "#/components/messages/Quote"}}
    assert [_resolve(doc, _resolve(doc, r["$ref"])["$ref"])["name"]
            for r in op["reply"]["messages"]] == ["Quote"]
    assert op["reply"]["address"] == {"location": "$message.header#/replyTo"}
