"""The management HTTP server: the aiohttp application and its lifetime.

    app = create_app(node, broker)                 # routes, auth, errors, static UI
    server = ManagementServer(node, "127.0.0.1", 15672, broker=broker)
    await server.start(); ...; await server.stop()

Everything runs in the broker's event loop, so handlers see and change the broker's state
between two AMQP frames, as a channel would: they change it by calling the broker, and show
it from read-only snapshots (``leveret.broker.snapshot``). The module layout: ``http``
(errors, JSON), ``auth`` (who may see what), ``listing`` (sort, columns, pages),
``context`` (shared state, and the ``Runtime`` the API reads), one module per resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from importlib import resources
from pathlib import Path

from aiohttp import web

from leveret.broker.node import Node
from leveret.errors import AMQPError
from leveret.management import (
    bindings,
    connections,
    definitions,
    exchanges,
    federation,
    messages,
    metrics,
    overview,
    policies,
    queues,
    shovels,
    stream_connections,
    users,
    vhosts,
)
from leveret.management.auth import USER_KEY, authenticate
from leveret.management.context import CONTEXT, Context, Runtime
from leveret.management.http import (
    JSON_BODY_LIMIT,
    ApiError,
    Handler,
    amqp_error,
    bad_request,
    json_response,
    not_found,
)
from leveret.management.rates import (
    SAMPLE_INTERVAL,
    RangeError,
    RateSampler,
    parse_ranges,
    use_ranges,
)
from leveret.management.server_log import server_logger

log = logging.getLogger("leveret.management")

STATIC = Path(str(resources.files("leveret.management") / "static"))
API_INDEX = "/api/"
RESOURCES = (overview, vhosts, users, exchanges, queues, bindings, connections, policies,
             definitions, messages, shovels, federation, stream_connections)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate /api requests and turn every failure into RabbitMQ's JSON errors."""
    if not request.path.startswith("/api/") or request.path == API_INDEX:
        return await handler(request)
    try:
        ctx = request.app[CONTEXT]
        request[USER_KEY] = authenticate(ctx.node, request)
        try:
            use_ranges(ctx.sampler, parse_ranges(request.query))
        except RangeError as exc:
            raise bad_request(str(exc)) from None
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except AMQPError as exc:
        return amqp_error(exc).response()
    except web.HTTPMethodNotAllowed as exc:
        return web.Response(status=405, headers={"Allow": ",".join(exc.allowed_methods)})
    except web.HTTPNotFound:
        return not_found().response()
    except web.HTTPException:
        raise
    except Exception:
        log.exception("management API error on %s %s", request.method, request.path)
        return json_response({"error": "internal_server_error",
                              "reason": "see the broker's log"}, 500)


async def static_file(request: web.Request) -> web.FileResponse:
    """The web UI's files (index.html for ``/``); never anything outside the folder."""
    relative = request.match_info["path"]
    if request.path.startswith("/api/"):
        raise not_found()
    try:  # a NUL byte (ValueError) or a name too long (OSError) names no file either
        target = (STATIC / relative).resolve()
        if target.is_dir():
            target = target / "index.html"
        found = target.is_relative_to(STATIC.resolve()) and target.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise web.HTTPNotFound()
    return web.FileResponse(target)


async def api_index(request: web.Request) -> web.Response:
    """A redirect for anyone, as RabbitMQ's (to its HTML API reference, which leveret does
    not ship: to the web UI instead)."""
    raise web.HTTPMovedPermanently("/")


def create_app(node: Node, broker: Runtime | None = None,
               sampler: RateSampler | None = None) -> web.Application:
    """The management application for ``node``; ``broker`` (the runtime's Broker) supplies
    listener addresses and connection details when given."""
    # Handlers read bodies with their own bounds (http.read_body); this one covers any
    # other read, such as aiohttp's form parsing.
    app = web.Application(middlewares=[api_middleware], client_max_size=JSON_BODY_LIMIT)
    app[CONTEXT] = Context(node, broker, sampler or RateSampler(node))
    app.router.add_get(API_INDEX, api_index)
    for module in RESOURCES:
        module.add_routes(app)
    metrics.add_routes(app, node, broker)  # GET /metrics, for Prometheus (no credentials)
    app.router.add_get("/{path:.*}", static_file)
    return app


class ManagementServer:
    """Serves ``create_app`` on host:port (TLS with ``ssl_context``), sampling rates every
    SAMPLE_INTERVAL seconds while it runs."""

    def __init__(self, node: Node, host: str = "127.0.0.1", port: int = 15672,
                 ssl_context: ssl.SSLContext | None = None, broker: Runtime | None = None,
                 sample_interval: float = SAMPLE_INTERVAL) -> None:
        self.node = node
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.sampler = RateSampler(node)
        if broker is not None:
            self.sampler.stream_connections = broker.stream_connections
        self.sample_interval = sample_interval
        self.app = create_app(node, broker, self.sampler)
        self._runner: web.AppRunner | None = None
        self._sampling: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/"

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on host:port, or on the bound ``sockets`` (taken from the list as the
        server owns them)."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                               logger=server_logger())
        await runner.setup()
        sites: list[web.BaseSite] = []
        if sockets is None:
            sites.append(web.TCPSite(runner, self.host, self.port,
                                     ssl_context=self.ssl_context, reuse_address=True))
        try:
            for site in sites:
                await site.start()
            while sockets:
                site = web.SockSite(runner, sockets[0], ssl_context=self.ssl_context)
                await site.start()
                sockets.pop(0)  # the server owns it now
                sites.append(site)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = sites[0]._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self.sampler.sample()
        self._sampling = asyncio.create_task(self._sample_forever())
        log.info("management API on %s", self.url)

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sample_interval)
            try:
                self.sampler.sample()
            except Exception:  # a sampling bug must not stop the rates for good
                log.exception("sampling the broker's counters failed")

    async def stop(self) -> None:
        if self._sampling is not None:
            self._sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampling
            self._sampling = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
