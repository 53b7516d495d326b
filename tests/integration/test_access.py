"""Every permission decision, allowed and refused, against leveret and the reference RabbitMQ.

Each test runs twice: on an in-process leveret (users set through ``Node``) and on the
reference RabbitMQ (users set through its management API), expecting the same reply codes
and texts. The RabbitMQ half skips when the reference or its management API is not running
(``../shared/tools/reference-rabbitmq start --management``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import pika
import pika.exceptions
import pytest

from leveret.broker.access import check_password, hash_password
from leveret.broker.node import Node
from leveret.testing import BrokerThread

REFERENCE_AMQP = os.environ.get("LEVERET_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5673/")
REFERENCE_HTTP = os.environ.get("LEVERET_REFERENCE_MANAGEMENT_URL", "http://127.0.0.1:15673/")


class Admin:
    """Creates users, vhosts, permissions and limits on one broker; removes them after."""

    host: str
    port: int
    cleanups: list[Callable[[], None]]

    def url(self, user: str, password: str, vhost: str = "/") -> pika.URLParameters:
        params = pika.URLParameters(f"amqp://{user}:{password}@{self.host}:{self.port}/"
                                    f"{urllib.parse.quote(vhost, safe='')}")
        params.connection_attempts = 1
        return params

    def user(self, name: str, password: str, tags: str = "") -> None: ...
    def vhost(self, name: str) -> None: ...
    def permissions(self, vhost: str, user: str, configure: str, write: str,
                    read: str) -> None: ...
    def topic_permissions(self, vhost: str, user: str, exchange: str, write: str,
                          read: str) -> None: ...
    def vhost_limit(self, vhost: str, name: str, value: int) -> None: ...
    def user_limit(self, user: str, name: str, value: int) -> None: ...


class LeveretAdmin(Admin):
    def __init__(self, broker: BrokerThread) -> None:
        self.broker = broker
        self.host, self.port = "127.0.0.1", broker.port or 0
        self.node: Node = broker.node

    def user(self, name: str, password: str, tags: str = "") -> None:
        self.broker.call(self.node.add_user, name, password, tags=tags)

    def vhost(self, name: str) -> None:
        self.broker.call(self.node.add_vhost, name)

    def permissions(self, vhost: str, user: str, configure: str, write: str,
                    read: str) -> None:
        self.broker.call(self.node.set_permissions, vhost, user, configure, write, read)

    def topic_permissions(self, vhost: str, user: str, exchange: str, write: str,
                          read: str) -> None:
        self.broker.call(self.node.set_topic_permissions, vhost, user, exchange, write, read)

    def vhost_limit(self, vhost: str, name: str, value: int) -> None:
        self.broker.call(self.node.set_vhost_limits, vhost, {name: value})

    def user_limit(self, user: str, name: str, value: int) -> None:
        self.broker.call(self.node.set_user_limits, user, {name: value})


class RabbitAdmin(Admin):
    def __init__(self) -> None:
        parsed = urllib.parse.urlparse(REFERENCE_AMQP)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 5672
        self.cleanups = []

    def _call(self, method: str, path: str, body: Any = None) -> None:
        request = urllib.request.Request(
            urllib.parse.urljoin(REFERENCE_HTTP, "api/" + path), method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json",
                     "authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    @staticmethod
    def q(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def user(self, name: str, password: str, tags: str = "") -> None:
        self._call("PUT", f"users/{self.q(name)}", {"password": password, "tags": tags})
        self.cleanups.append(lambda: self._call("DELETE", f"users/{self.q(name)}"))

    def vhost(self, name: str) -> None:
        self._call("PUT", f"vhosts/{self.q(name)}")
        self.cleanups.append(lambda: self._call("DELETE", f"vhosts/{self.q(name)}"))

    def permissions(self, vhost: str, user: str, configure: str, write: str,
                    read: str) -> None:
        self._call("PUT", f"permissions/{self.q(vhost)}/{self.q(user)}",
                   {"configure": configure, "write": write, "read": read})

    def topic_permissions(self, vhost: str, user: str, exchange: str, write: str,
                          read: str) -> None:
        self._call("PUT", f"topic-permissions/{self.q(vhost)}/{self.q(user)}",
                   {"exchange": exchange, "write": write, "read": read})

    def vhost_limit(self, vhost: str, name: str, value: int) -> None:
        self._call("PUT", f"vhost-limits/{self.q(vhost)}/{name}", {"value": value})

    def user_limit(self, user: str, name: str, value: int) -> None:
        self._call("PUT", f"user-limits/{self.q(user)}/{name}", {"value": value})


def _reference_available() -> bool:
    try:
        RabbitAdmin()._call("GET", "overview")
    except (OSError, urllib.error.URLError):
        return False
    return True


@pytest.fixture(scope="module")
def leveret_thread() -> Iterator[BrokerThread]:
    with BrokerThread() as broker:
        yield broker


@pytest.fixture(params=["leveret", "rabbitmq"])
def admin(request: pytest.FixtureRequest) -> Iterator[Admin]:
    if request.param == "leveret":
        yield LeveretAdmin(request.getfixturevalue("leveret_thread"))
        return
    if not _reference_available():
        pytest.skip(f"reference RabbitMQ management API not reachable at {REFERENCE_HTTP}")
    rabbit = RabbitAdmin()
    yield rabbit
    for cleanup in reversed(rabbit.cleanups):
        with contextlib.suppress(urllib.error.HTTPError):
            cleanup()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def refused(fn: Callable[[], Any]) -> tuple[int, str]:
    """Run ``fn``; return the (code, text) the broker closed the channel or connection with."""
    with pytest.raises((pika.exceptions.ChannelClosedByBroker,
                        pika.exceptions.ConnectionClosedByBroker)) as info:
        fn()
    return info.value.reply_code, info.value.reply_text


def connect_refused(admin: Admin, user: str, password: str, vhost: str = "/"
                    ) -> tuple[int, str]:
    """Log in with py-amqp (it reports handshake refusals with their code and text)."""
    conn = amqp.Connection(f"{admin.host}:{admin.port}", userid=user, password=password,
                           virtual_host=vhost, connect_timeout=5)
    try:
        with pytest.raises(amqp.exceptions.AMQPError) as info:
            conn.connect()
    finally:
        conn.collect()
    return info.value.code, info.value.message


@pytest.fixture
def limited(admin: Admin) -> Iterator[tuple[Admin, str, pika.BlockingConnection]]:
    """A user allowed to configure, write and read only names starting with its prefix."""
    user = unique("lim")
    admin.user(user, "pw")
    admin.permissions("/", user, f"^{user}", f"^{user}", f"^{user}")
    conn = pika.BlockingConnection(admin.url(user, "pw"))
    yield admin, user, conn
    if conn.is_open:
        conn.close()


def denied(user: str, kind: str, name: str, vhost: str = "/") -> tuple[int, str]:
    return 403, f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost}' refused for " \
                f"user '{user}'"


def test_password_hash_matches_rabbitmq_format() -> None:
    # RabbitMQ's documented example: salt 908D C60A, password "test12"
    salt = bytes.fromhex("908DC60A")
    assert hash_password("test12", salt=salt) == \
        "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    from leveret.broker.access import User
    user = User("u", hash_password("secret"))
    assert check_password(user, "secret") and not check_password(user, "Secret")
    md5 = User("u", hash_password("x", "rabbit_password_hashing_md5"),
               "rabbit_password_hashing_md5")
    assert check_password(md5, "x")


def test_no_permissions_in_vhost_refuses_connection(admin: Admin) -> None:
    user = unique("nop")
    admin.user(user, "pw")
    assert connect_refused(admin, user, "pw") == (
        530, f"NOT_ALLOWED - access to vhost '/' refused for user '{user}'")


def test_unknown_vhost_and_bad_password(admin: Admin) -> None:
    assert connect_refused(admin, "guest", "guest", "nosuch") == (
        530, "NOT_ALLOWED - vhost nosuch not found")
    assert connect_refused(admin, "guest", "wrong")[0] == 403


def test_permissions_in_another_vhost(admin: Admin) -> None:
    user, vhost = unique("vu"), unique("vh")
    admin.user(user, "pw")
    admin.vhost(vhost)
    admin.permissions(vhost, user, ".*", ".*", ".*")
    conn = pika.BlockingConnection(admin.url(user, "pw", vhost))
    ch = conn.channel()
    ch.queue_declare("q")
    conn.close()
    assert connect_refused(admin, user, "pw")[0] == 530


def test_configure_permission(limited: tuple[Admin, str, pika.BlockingConnection]) -> None:
    _, user, conn = limited
    assert refused(lambda: conn.channel().queue_declare("other")) == denied(user, "queue",
                                                                            "other")
    conn.channel().queue_declare(f"{user}-q")
    assert refused(lambda: conn.channel().exchange_declare("other", "direct")) == denied(
        user, "exchange", "other")
    conn.channel().exchange_declare(f"{user}-x", "topic")
    assert refused(lambda: conn.channel().queue_delete("other")) == denied(user, "queue",
                                                                           "other")
    assert refused(lambda: conn.channel().exchange_delete("other")) == denied(
        user, "exchange", "other")
    code, text = refused(lambda: conn.channel().queue_declare(""))
    assert code == 403 and "access to queue 'amq.gen-" in text
    # passive declarations need no permission (404 because it does not exist)
    assert refused(lambda: conn.channel().queue_declare("other", passive=True))[0] == 404
    conn.channel().exchange_declare("amq.direct", passive=True)
    conn.channel().queue_delete(f"{user}-q")
    conn.channel().exchange_delete(f"{user}-x")


def test_dead_letter_and_alternate_exchanges_need_write(
        limited: tuple[Admin, str, pika.BlockingConnection]) -> None:
    _, user, conn = limited
    assert refused(lambda: conn.channel().queue_declare(
        f"{user}-dl", arguments={"x-dead-letter-exchange": "dlx"})) == denied(
            user, "exchange", "dlx")
    assert refused(lambda: conn.channel().exchange_declare(
        f"{user}-ae", "topic", arguments={"alternate-exchange": "zz"})) == denied(
            user, "exchange", "zz")
    conn.channel().queue_declare(f"{user}-dl2", arguments={
        "x-dead-letter-exchange": f"{user}-dlx"})
    conn.channel().queue_delete(f"{user}-dl2")


def test_write_permission_on_publish(limited: tuple[Admin, str, pika.BlockingConnection]
                                     ) -> None:
    _, user, conn = limited
    conn.channel().queue_declare(f"{user}-q")

    def publish(exchange: str) -> None:
        ch = conn.channel()
        ch.basic_publish(exchange, f"{user}-q", b"x")
        ch.queue_declare(f"{user}-q", passive=True)  # a round trip to see the error

    assert refused(lambda: publish("")) == denied(user, "exchange", "amq.default")
    assert refused(lambda: publish("amq.topic")) == denied(user, "exchange", "amq.topic")
    # write is checked before existence
    assert refused(lambda: publish("nosuch")) == denied(user, "exchange", "nosuch")
    conn.channel().queue_delete(f"{user}-q")


def test_read_permission(limited: tuple[Admin, str, pika.BlockingConnection]) -> None:
    _, user, conn = limited
    assert refused(lambda: conn.channel().basic_get("other")) == denied(user, "queue", "other")
    # read is checked before existence
    assert refused(lambda: conn.channel().basic_get("nosuchq")) == denied(user, "queue",
                                                                          "nosuchq")
    assert refused(lambda: conn.channel().basic_consume("other", lambda *a: None)) == denied(
        user, "queue", "other")
    assert refused(lambda: conn.channel().queue_purge("other")) == denied(user, "queue",
                                                                          "other")


def test_binding_needs_write_on_destination_and_read_on_source(
        limited: tuple[Admin, str, pika.BlockingConnection]) -> None:
    _, user, conn = limited
    q = f"{user}-q"
    conn.channel().queue_declare(q)
    conn.channel().exchange_declare(f"{user}-x", "topic")
    assert refused(lambda: conn.channel().queue_bind(q, "amq.direct", "k")) == denied(
        user, "exchange", "amq.direct")
    assert refused(lambda: conn.channel().queue_bind("other", f"{user}-x", "k")) == denied(
        user, "queue", "other")
    assert refused(lambda: conn.channel().exchange_bind(f"{user}-x", "amq.topic", "k")) == \
        denied(user, "exchange", "amq.topic")
    conn.channel().queue_bind(q, f"{user}-x", "k")
    conn.channel().queue_unbind(q, f"{user}-x", "k")
    conn.channel().queue_delete(q)
    conn.channel().exchange_delete(f"{user}-x")


def test_empty_permissions_refuse_everything(admin: Admin) -> None:
    user = unique("emp")
    admin.user(user, "pw")
    admin.permissions("/", user, "", "", "")
    conn = pika.BlockingConnection(admin.url(user, "pw"))  # the vhost is still allowed
    assert refused(lambda: conn.channel().queue_declare("eq")) == denied(user, "queue", "eq")
    conn.channel().exchange_declare("amq.direct", passive=True)
    conn.close()


def test_topic_permissions(admin: Admin) -> None:
    user = unique("top")
    admin.user(user, "pw")
    admin.permissions("/", user, ".*", ".*", ".*")
    admin.topic_permissions("/", user, "amq.topic", "^a\\.{username}", "^r\\.")
    conn = pika.BlockingConnection(admin.url(user, "pw"))
    q = f"{user}-q"
    conn.channel().queue_declare(q, auto_delete=True)

    def publish(exchange: str, key: str) -> None:
        ch = conn.channel()
        ch.basic_publish(exchange, key, b"x")
        ch.queue_declare(q, passive=True)

    topic_denied = (403, f"ACCESS_REFUSED - access to topic 'a.x' in exchange 'amq.topic' in "
                         f"vhost '/' refused for user '{user}'")
    publish("amq.topic", f"a.{user}.z")  # {username} expanded
    assert refused(lambda: publish("amq.topic", "a.x")) == topic_denied
    publish("amq.direct", "a.x")  # topic permissions apply to topic exchanges only
    conn.channel().queue_bind(q, "amq.topic", "r.x")
    assert refused(lambda: conn.channel().queue_bind(q, "amq.topic", "a.x")) == topic_denied
    assert refused(lambda: conn.channel().queue_unbind(q, "amq.topic", "a.x")) == topic_denied
    conn.channel().queue_delete(q)
    conn.close()


def test_user_id_must_match_unless_impersonator(admin: Admin) -> None:
    user = unique("imp")
    admin.user(user, "pw", tags="impersonator")
    admin.permissions("/", user, ".*", ".*", ".*")
    conn = pika.BlockingConnection(admin.url(user, "pw"))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("amq.direct", "nowhere", b"x", pika.BasicProperties(user_id="someone"))
    conn.close()


def test_vhost_limits(admin: Admin) -> None:
    vhost = unique("lv")
    admin.vhost(vhost)
    admin.permissions(vhost, "guest", ".*", ".*", ".*")
    admin.vhost_limit(vhost, "max-connections", 1)
    admin.vhost_limit(vhost, "max-queues", 1)
    first = pika.BlockingConnection(admin.url("guest", "guest", vhost))
    assert connect_refused(admin, "guest", "guest", vhost) == (
        530, f"NOT_ALLOWED - access to vhost '{vhost}' refused for user 'guest': connection "
             "limit (1) is reached")
    ch = first.channel()
    ch.queue_declare("a")
    ch.queue_declare("a")  # re-declaring an existing queue is fine
    assert refused(lambda: first.channel().queue_declare("b")) == (
        406, f"PRECONDITION_FAILED - cannot declare queue 'b': queue limit in vhost '{vhost}' "
             "(1) is reached")
    first.close()


def test_user_limits(admin: Admin) -> None:
    user = unique("ul")
    admin.user(user, "pw")
    admin.permissions("/", user, ".*", ".*", ".*")
    admin.user_limit(user, "max-connections", 1)
    admin.user_limit(user, "max-channels", 2)
    first = pika.BlockingConnection(admin.url(user, "pw"))
    assert connect_refused(admin, user, "pw") == (
        530, f"NOT_ALLOWED - connection refused for user '{user}': user connection limit (1) "
             "is reached")
    first.channel()
    first.channel()
    assert refused(lambda: first.channel()) == (
        530, f"NOT_ALLOWED - number of channels opened for user '{user}' has reached the "
             "maximum allowed user limit of (2)")


def test_guest_is_loopback_only() -> None:
    """RabbitMQ refuses guest from other addresses; leveret decides by the peer address."""
    node = Node()
    assert node.authenticate("guest", "guest", "127.0.0.1") is not None
    assert node.authenticate("guest", "guest", "::1") is not None
    assert node.authenticate("guest", "guest", "10.1.2.3") is None
    node.add_user("app", "pw")
    assert node.authenticate("app", "pw", "10.1.2.3") is not None
    node.loopback_users = []
    assert node.authenticate("guest", "guest", "10.1.2.3") is not None


def test_deleting_a_user_closes_its_connections_and_permissions_apply_at_once(
        leveret_thread: BrokerThread) -> None:
    node: Node = leveret_thread.node
    user = unique("del")
    leveret_thread.call(node.add_user, user, "pw")
    leveret_thread.call(node.set_permissions, "/", user, ".*", ".*", ".*")
    admin = LeveretAdmin(leveret_thread)
    conn = pika.BlockingConnection(admin.url(user, "pw"))
    conn.channel().queue_declare(f"{user}-q", auto_delete=True)
    leveret_thread.call(node.set_permissions, "/", user, "^none", ".*", ".*")
    assert refused(lambda: conn.channel().queue_declare(f"{user}-q2")) == denied(
        user, "queue", f"{user}-q2")
    leveret_thread.call(node.delete_user, user)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.channel()
        conn.process_data_events(1)
    assert info.value.reply_code == 320


def test_node_connection_limit() -> None:
    from leveret.broker.node import Limits

    with BrokerThread(limits=Limits(max_connections=1)) as broker:
        admin = LeveretAdmin(broker)
        first = pika.BlockingConnection(admin.url("guest", "guest"))
        assert connect_refused(admin, "guest", "guest") == (
            530, "NOT_ALLOWED - connection refused: node connection limit (1) is reached")
        assert first.channel().is_open  # the connection inside the limit is unaffected
        first.close()
        pika.BlockingConnection(admin.url("guest", "guest")).close()
