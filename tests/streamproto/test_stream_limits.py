"""The broker's limits hold for stream-protocol connections as for AMQP ones, on leveret and on
RabbitMQ 3.10.8 with rabbitmq_stream: deleting a user or a vhost closes its connections,
cleared permissions refuse what follows, stream connections count in max-connections, and
the disk alarm stops reading from publishing connections."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
from raw_client import RawClient, amqp_message, publish
from streamproto_helpers import unique

from leveret.broker.node import Limits
from leveret.runtime.embedded import Broker
from leveret.streamproto import frames as f

# rstream is not used here: a RawClient says plainly when the server hangs up.


class Admin:
    """Users, vhosts, permissions and limits: leveret's node, or RabbitMQ's HTTP API."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.node = target.broker.node if target.broker is not None else None

    def _http(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        request = urllib.request.Request(
            self.target.http + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json",
                     "authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    async def _do(self, leveret: Any, method: str, path: str,
                  body: dict[str, Any] | None = None) -> None:
        if self.node is not None:
            leveret()
        else:
            await asyncio.to_thread(self._http, method, path, body)

    async def add_user(self, name: str, password: str) -> None:
        await self._do(lambda: self.node.add_user(name, password), "PUT",
                       f"/api/users/{name}", {"password": password, "tags": ""})

    async def delete_user(self, name: str) -> None:
        await self._do(lambda: self.node.delete_user(name), "DELETE", f"/api/users/{name}")

    async def add_vhost(self, name: str) -> None:
        await self._do(lambda: self.node.add_vhost(name), "PUT",
                       f"/api/vhosts/{quote(name, safe='')}")

    async def delete_vhost(self, name: str) -> None:
        await self._do(lambda: self.node.delete_vhost(name), "DELETE",
                       f"/api/vhosts/{quote(name, safe='')}")

    async def permit(self, vhost: str, user: str) -> None:
        await self._do(lambda: self.node.set_permissions(vhost, user), "PUT",
                       f"/api/permissions/{quote(vhost, safe='')}/{user}",
                       {"configure": ".*", "write": ".*", "read": ".*"})

    async def clear_permissions(self, vhost: str, user: str) -> None:
        await self._do(lambda: self.node.clear_permissions(vhost, user), "DELETE",
                       f"/api/permissions/{quote(vhost, safe='')}/{user}")

    async def limit_connections(self, vhost: str, limit: int) -> None:
        await self._do(lambda: self.node.set_vhost_limits(vhost, {"max-connections": limit}),
                       "PUT", f"/api/vhost-limits/{quote(vhost, safe='')}/max-connections",
                       {"value": limit})


def _amqp_opens(url: str) -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPConnectionError:
        return False
    return True


def _vhost_url(target: Any, vhost: str) -> str:
    return target.amqp_url.rstrip("/") + "/" + quote(vhost, safe="")


async def _alive(client: RawClient) -> bool:
    """The connection still answers (QueryOffset, which needs no permission to be read)."""
    try:
        await client.request(f.QUERY_OFFSET, f.string("x") + f.string("nothing"), timeout=5)
    except (TimeoutError, ConnectionError):
        return False
    return not client.closed.is_set()


async def test_deleting_a_user_closes_its_stream_connections(target) -> None:
    admin = Admin(target)
    user = unique("user")
    await admin.add_user(user, "pw")
    await admin.permit("/", user)
    theirs = await RawClient.connect(target.stream_port, user=user, password="pw")
    ours = await RawClient.connect(target.stream_port)
    try:
        await admin.delete_user(user)
        await asyncio.wait_for(theirs.closed.wait(), 20)
        assert await _alive(ours)
    finally:
        await theirs.close()
        await ours.close()


async def test_deleting_a_vhost_closes_its_stream_connections(target) -> None:
    admin = Admin(target)
    vhost = unique("vhost")
    await admin.add_vhost(vhost)
    await admin.permit(vhost, "guest")
    inside = await RawClient.connect(target.stream_port, vhost=vhost)
    outside = await RawClient.connect(target.stream_port)
    try:
        await admin.delete_vhost(vhost)
        await asyncio.wait_for(inside.closed.wait(), 20)
        assert await _alive(outside)
    finally:
        await inside.close()
        await outside.close()


async def test_cleared_permissions_refuse_what_follows(target) -> None:
    """The connection stays open (as RabbitMQ's does); its next commands are refused.
    (RabbitMQ caches what a connection was once allowed: a Delete here would still pass
    its configure check, which Create made; leveret checks the permissions of the moment.)"""
    admin = Admin(target)
    user = unique("user")
    await admin.add_user(user, "pw")
    await admin.permit("/", user)
    client = await RawClient.connect(target.stream_port, user=user, password="pw")
    stream = unique()
    try:
        create = f.string(stream) + f.properties({})
        assert (await client.request(f.CREATE, create)).code == f.OK
        await admin.clear_permissions("/", user)
        answer = await client.request(f.DECLARE_PUBLISHER, bytes((1,)) + f.string("") +
                                      f.string(stream))
        assert answer.code == f.ACCESS_REFUSED
        assert not client.closed.is_set()
    finally:
        await client.close()
        guest = await RawClient.connect(target.stream_port)
        await guest.request(f.DELETE, f.string(stream))
        await guest.close()
        await admin.delete_user(user)


async def test_stream_connections_count_in_the_vhost_connection_limit(target) -> None:
    """An AMQP connection is refused while stream connections fill the vhost's limit, on
    both brokers. A stream connection beyond the limit: leveret refuses it ("virtual host
    access failure"); RabbitMQ's plugin lets it in (its Open does not check the limit, a
    FIXME in rabbit_stream_reader up to 4.x)."""
    admin = Admin(target)
    vhost = unique("vhost")
    await admin.add_vhost(vhost)
    await admin.permit(vhost, "guest")
    await admin.limit_connections(vhost, 1)
    first = await RawClient.connect(target.stream_port, vhost=vhost)
    second: RawClient | None = None
    try:
        assert not await asyncio.to_thread(_amqp_opens, _vhost_url(target, vhost))
        if target.kind == "leveret":
            with pytest.raises(ConnectionRefusedError, match="open: code 12"):
                await RawClient.connect(target.stream_port, vhost=vhost)
        else:
            second = await RawClient.connect(target.stream_port, vhost=vhost)
        await first.close()
        if second is not None:
            await second.close()
        await asyncio.sleep(1)  # (RabbitMQ forgets a closed connection asynchronously)
        assert await asyncio.to_thread(_amqp_opens, _vhost_url(target, vhost))
    finally:
        await first.close()
        await admin.delete_vhost(vhost)


async def test_stream_connections_count_in_the_node_connection_limit(tmp_path: Path) -> None:
    """leveret's own node-wide limit (``max_connections``) counts both protocols."""
    broker = Broker(port=0, stream_port=0, data_dir=tmp_path / "data",
                    limits=Limits(max_connections=2))
    await broker.start()
    try:
        stream_port = broker.stream_port or 0
        one = await RawClient.connect(stream_port)
        amqp = await asyncio.to_thread(pika.BlockingConnection,
                                       pika.URLParameters(broker.url))
        with pytest.raises(ConnectionRefusedError, match="open: code 12"):
            await RawClient.connect(stream_port)
        assert not await asyncio.to_thread(_amqp_opens, broker.url)
        await one.close()
        await asyncio.sleep(0.2)
        two = await RawClient.connect(stream_port)
        await two.close()
        await asyncio.to_thread(amqp.close)
    finally:
        await broker.stop()


# -- the disk alarm ---------------------------------------------------------------------------

class AlarmTarget:
    def __init__(self, kind: str, port: int, switch: Any) -> None:
        self.kind = kind
        self.stream_port = port
        self.switch = switch  # async switch(on: bool)


@pytest.fixture(params=["leveret", "rabbitmq"])
async def alarm_target(request: pytest.FixtureRequest, tmp_path: Path
                       ) -> AsyncIterator[AlarmTarget]:
    if request.param == "leveret":
        free = {"bytes": 10 << 30}
        broker = Broker(port=0, stream_port=0, data_dir=tmp_path / "data",
                        disk_free=lambda: free["bytes"])
        await broker.start()

        async def switch_leveret(on: bool) -> None:
            free["bytes"] = 0 if on else 10 << 30

        try:
            yield AlarmTarget("leveret", broker.stream_port or 0, switch_leveret)
        finally:
            await broker.stop()
        return
    node = request.getfixturevalue("stream_rabbit")

    async def switch_rabbit(on: bool) -> None:
        limit = "100000GB" if on else "50MB"  # (50MB: RabbitMQ's default)
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "-n", node.node,
                                                 "set_disk_free_limit", limit],
                                env=node.env(), check=True, stdout=subprocess.DEVNULL)

    try:
        yield AlarmTarget("rabbitmq", node.stream_port or 5552, switch_rabbit)
    finally:
        await switch_rabbit(False)


async def test_the_disk_alarm_blocks_publishing_connections(alarm_target) -> None:
    """While the disk alarm is set, a connection with publishers is no longer read, one
    without is served but may not declare a publisher; all resumes when it clears."""
    port = alarm_target.stream_port
    stream = unique()
    publisher = await RawClient.connect(port)
    other = await RawClient.connect(port)
    query = f.string("x") + f.string(stream)
    try:
        assert (await publisher.request(f.CREATE, f.string(stream) + f.properties({}))).code \
            == f.OK
        declare = bytes((1,)) + f.string("") + f.string(stream)
        assert (await publisher.request(f.DECLARE_PUBLISHER, declare)).code == f.OK
        publisher.send(publish(1, [(1, amqp_message("before"))]))
        await publisher.wait_for(lambda fr: fr.key == f.PUBLISH_CONFIRM)
        await alarm_target.switch(True)
        for attempt in range(200):  # until the alarm is seen: DeclarePublisher refused
            answer = await other.request(f.DECLARE_PUBLISHER, bytes((attempt + 2,)) +
                                         f.string("") + f.string(stream))
            if answer.code == f.PRECONDITION_FAILED:
                break
            await other.request(f.DELETE_PUBLISHER, bytes((attempt + 2,)))
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("DeclarePublisher was never refused")
        await asyncio.sleep(0.5)
        publisher.send(publish(1, [(2, amqp_message("during"))]))
        await asyncio.sleep(0.5)
        held = asyncio.create_task(publisher.request(f.QUERY_PUBLISHER_SEQUENCE, query,
                                                     timeout=60))
        await asyncio.sleep(2)
        assert not held.done()  # not read while the alarm lasts
        assert (await other.request(f.QUERY_PUBLISHER_SEQUENCE, query)).code == f.OK
        await alarm_target.switch(False)
        assert (await held).code == f.OK
        await publisher.wait_for(lambda fr: fr.key == f.PUBLISH_CONFIRM and
                                 fr.body.endswith(f.u64(2)))
    finally:
        await publisher.close()
        await other.close()
        cleanup = await RawClient.connect(port)
        await cleanup.request(f.DELETE, f.string(stream))
        await cleanup.close()
