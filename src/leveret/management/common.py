"""What every management endpoint shares: who is asking, JSON in and out, errors as
RabbitMQ reports them, and the query parameters of list endpoints.

Access follows RabbitMQ's management plugin:
- no or wrong credentials: 401 with ``WWW-Authenticate`` and ``Login failed``;
- a user without a management tag (management, policymaker, monitoring, administrator):
  401 ``Not management user``;
- administrator: everything; monitoring: may read everything (every vhost, every
  connection); management and policymaker: only vhosts they have permissions in, and their
  own connections; policymaker may also change policies there.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import hashlib
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn
from urllib.parse import quote, quote_plus, unquote_plus

from aiohttp import web

from leveret.amqp.fields import Long
from leveret.broker.access import User
from leveret.errors import AccessRefused, AMQPError, NotFound

REALM = 'Basic realm="RabbitMQ Management"'
MANAGEMENT_TAGS = frozenset({"management", "policymaker", "monitoring", "administrator"})
MONITOR_TAGS = frozenset({"monitoring", "administrator"})
POLICY_TAGS = frozenset({"policymaker", "administrator"})
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
DEFAULT_EXCHANGE_ALIAS = "amq.default"  # the default exchange's name in URLs

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def node_name() -> str:
    """The node's name as RabbitMQ would print it: ``name@host``."""
    return f"leveret@{socket.gethostname().split('.')[0]}"


# -- errors ------------------------------------------------------------------------------

class ApiError(Exception):
    """An error answered as ``{"error": ..., "reason": ...}`` with an HTTP status."""

    def __init__(self, status: int, error: str, reason: Any,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.headers = headers or {}

    def response(self) -> web.Response:
        return json_response({"error": self.error, "reason": self.reason}, self.status,
                             headers=self.headers)


def not_found() -> ApiError:
    return ApiError(404, "Object Not Found", "Not Found")


def bad_request(reason: Any) -> ApiError:
    return ApiError(400, "bad_request", reason)


def not_authorised(reason: str) -> ApiError:
    return ApiError(401, "not_authorised", reason)


def amqp_error(exc: AMQPError) -> ApiError:
    """An AMQP error from the broker core, as the management plugin reports it."""
    if isinstance(exc, AccessRefused):  # RabbitMQ does not say which permission is missing
        return not_authorised("Access refused.")
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", exc.text)
    return bad_request(exc.text)


def missing_keys(body: dict[str, Any], *keys: str) -> None:
    """400 naming the missing keys the way RabbitMQ's Erlang error term does."""
    missing = [k for k in keys if k not in body]
    if missing:
        raise bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")


# -- JSON ------------------------------------------------------------------------------------

def json_response(data: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":"), default=jsonable),
                        status=status, content_type="application/json", headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)


def created(location: str | None = None) -> web.Response:
    return web.Response(status=201, headers={"Location": location} if location else None)


def jsonable(value: Any) -> Any:
    """An AMQP field value as JSON (what RabbitMQ's management plugin prints for it)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode()
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


def field_table(value: Any) -> dict[str, Any]:
    """JSON arguments as an AMQP field table: integers become longs, as RabbitMQ makes
    them, so declarations over HTTP and over AMQP are equivalent."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise bad_request("arguments must be an object")
    return {str(k): _field_value(v) for k, v in value.items()}


def _field_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return Long(value)
    if isinstance(value, dict):
        return {str(k): _field_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_field_value(v) for v in value]
    return value


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as an object ({} when empty)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("not_json") from None
    if not isinstance(body, dict):
        raise bad_request("not_json")
    return body


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


# -- who is asking -------------------------------------------------------------------------

# Typed request storage where aiohttp has it (3.14+, which warns about plain string keys).
USER_KEY: Any = (web.RequestKey("leveret.user", User) if hasattr(web, "RequestKey")
                 else "leveret.user")


def current_user(request: web.Request) -> User:
    user: User = request[USER_KEY]
    return user


def tags_of(user: User) -> set[str]:
    return set(user.tags)


def is_admin(user: User) -> bool:
    return "administrator" in user.tags


def is_monitor(user: User) -> bool:
    return bool(MONITOR_TAGS & tags_of(user))


def require_admin(request: web.Request) -> User:
    user = current_user(request)
    if not is_admin(user):
        raise not_authorised("Not administrator user")
    return user


def require_monitor(request: web.Request) -> User:
    user = current_user(request)
    if not is_monitor(user):
        raise not_authorised("Not monitor user")
    return user


def require_policymaker(request: web.Request) -> User:
    user = current_user(request)
    if not POLICY_TAGS & tags_of(user):
        raise not_authorised("Not policymaker user")
    return user


def authenticate(node: Any, request: web.Request) -> User:
    """The user of the request's Basic credentials, or a 401."""
    header = request.headers.get("Authorization", "")
    failed = ApiError(401, "not_authorized", "Login failed", {"WWW-Authenticate": REALM})
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise failed
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(
            ":")
    except (binascii.Error, UnicodeDecodeError):
        raise failed from None
    user: User | None = node.authenticate(username, password, request.remote or "")
    if user is None:
        raise failed
    if not MANAGEMENT_TAGS & tags_of(user):
        raise not_authorised("Not management user")
    return user


def visible_vhosts(node: Any, user: User) -> list[str]:
    """Monitors and administrators see every vhost; others those they have permissions
    in (RabbitMQ's list_visible_vhosts)."""
    if is_monitor(user):
        return list(node.vhosts)
    return [v for v in node.vhosts if (v, user.name) in node.permissions]


def vhost_of(request: web.Request, node: Any, *, write: bool = False) -> Any:
    """The vhost named in the path: 404 if unknown; 401 if the user may not see it, or,
    for changes, has no permissions in it (even an administrator needs some)."""
    name = request.match_info["vhost"]
    vhost = node.vhosts.get(name)
    if vhost is None:
        raise not_found()
    user = current_user(request)
    if (write or not is_monitor(user)) and (name, user.name) not in node.permissions:
        raise not_authorised("User not authorised to access virtual host")
    return vhost


def grants(request: web.Request, node: Any, vhost: str) -> Any:
    """The user's AMQP permissions in ``vhost``, checked as a client's would be."""
    return node.grants(vhost, current_user(request).name)


def exchange_name(path_name: str) -> str:
    return "" if path_name == DEFAULT_EXCHANGE_ALIAS else path_name


def sees_connection(user: User, connection_user: str) -> bool:
    return is_monitor(user) or user.name == connection_user


# -- list endpoints: filter, sort, columns, pagination ------------------------------------------

def _lookup(item: dict[str, Any], dotted: str) -> Any:
    value: Any = item
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True, default=str))


def _columns(item: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    picked: dict[str, Any] = {}
    for column in columns:
        parts = column.split(".")
        value = _lookup(item, column)
        if value is None and parts[0] not in item:
            continue
        target = picked
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return picked


def _page_params(query: Any) -> tuple[int, int] | None:
    if "page" not in query:
        return None
    try:
        page = int(query["page"])
        size = int(query.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        raise bad_request("Pagination parameters are invalid") from None
    if page < 1 or size < 1 or size > MAX_PAGE_SIZE:
        raise bad_request("Pagination parameters are invalid")
    return page, size


def listing(request: web.Request, items: Iterable[dict[str, Any]],
            default_sort: tuple[str, ...] = ("vhost", "name")) -> web.Response:
    """A list endpoint's answer under RabbitMQ's query parameters: ``sort`` (a dotted
    key), ``sort_reverse``, ``columns`` (comma-separated dotted keys), and with ``page``
    (``page_size``, ``name``, ``use_regex``) the pagination object."""
    query = request.query
    rows = list(items)
    total = len(rows)
    sort = query.get("sort")
    keys = (sort,) if sort else default_sort
    rows.sort(key=lambda r: tuple(_sort_key(_lookup(r, k)) for k in keys),
              reverse=as_bool(query.get("sort_reverse", "false")))
    paging = _page_params(query)
    if paging is not None:
        name = query.get("name", "")
        if name:
            if as_bool(query.get("use_regex", "false")):
                try:
                    pattern = re.compile(name)
                except re.error:
                    raise bad_request("invalid regular expression") from None
                rows = [r for r in rows if pattern.search(str(r.get("name", "")))]
            else:
                rows = [r for r in rows if name.lower() in str(r.get("name", "")).lower()]
    columns = [c for c in query.get("columns", "").split(",") if c]
    if columns:
        rows = [_columns(r, columns) for r in rows]
    if paging is None:
        return json_response(rows)
    page, size = paging
    filtered = len(rows)
    page_count = (filtered + size - 1) // size
    if page > max(page_count, 1):
        raise ApiError(400, "page_out_of_range",
                       f"Page out of range, page: {page} page size: {size}, len: {filtered}")
    chunk = rows[(page - 1) * size: page * size]
    return json_response({"filtered_count": filtered, "item_count": len(chunk),
                          "items": chunk, "page": page, "page_count": page_count,
                          "page_size": size, "total_count": total})


def one(request: web.Request, item: dict[str, Any]) -> web.Response:
    """A single object, with ``columns`` applied."""
    columns = [c for c in request.query.get("columns", "").split(",") if c]
    return json_response(_columns(item, columns) if columns else item)


def stats_disabled(request: web.Request) -> bool:
    """``disable_stats=true``: leave out message_stats and rates (cheaper listings)."""
    return as_bool(request.query.get("disable_stats", "false"))


# -- bindings' properties key -------------------------------------------------------------------

def arguments_hash(arguments: dict[str, Any]) -> str:
    """Short and URL-safe; leveret's own (RabbitMQ hashes the Erlang term with phash2)."""
    if not arguments:
        return ""
    canonical = json.dumps(jsonable(arguments), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha1(canonical.encode()).digest()[:4]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    """The key naming a binding in URLs, as RabbitMQ forms it: the routing key quoted
    (quote_plus), plus ``~`` and a hash of the arguments when there are some; ``~`` alone
    for an empty routing key without arguments."""
    quoted = quote_plus(routing_key, safe="")
    if not arguments:
        return quoted or "~"
    return f"{quoted}~{arguments_hash(arguments)}"


def matches_properties_key(wanted: str, routing_key: str, arguments: dict[str, Any]) -> bool:
    """Whether ``wanted`` (a path segment, already decoded once) names this binding. As in
    RabbitMQ the routing key part is unquoted once more, so both the key as listed
    ("a.%23") and as the Location header gives it ("a.%2523") find the binding."""
    key, _, args_hash = wanted.rpartition("~") if "~" in wanted else (wanted, "", "")
    return unquote_plus(key) == routing_key and args_hash == arguments_hash(arguments)


def location_quote(key: str) -> str:
    """A properties key in a Location header: quoted once more, as RabbitMQ sends it."""
    return quote(key, safe="~")


def raise_for(exc: AMQPError) -> NoReturn:
    raise amqp_error(exc) from exc


# -- the application's shared state -----------------------------------------------------------

class Context:
    """What handlers reach through ``request.app[CONTEXT]``."""

    def __init__(self, node: Any, broker: Any, sampler: Any) -> None:
        self.node = node
        self.broker = broker  # the embedded Broker, for listeners and connection details
        self.sampler = sampler  # rates.RateSampler
        self.node_name = node_name()


CONTEXT: web.AppKey[Context] = web.AppKey("leveret.management", Context)


def context(request: web.Request) -> Context:
    return request.app[CONTEXT]
