"""Definitions over HTTP: GET/POST /api/definitions (the whole broker) and
/api/definitions/{vhost} (one vhost, items without their "vhost" key).

Only the HTTP side is here (administrators only, the body as JSON or an uploaded file,
``?download=`` as an attachment); the format itself is ``leveret.broker.rabbit_definitions``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from leveret.broker.rabbit_definitions import InvalidDefinition, export_all, export_vhost
from leveret.broker.rabbit_import import import_definitions
from leveret.errors import AMQPError
from leveret.management.auth import require_admin
from leveret.management.context import context
from leveret.management.http import (
    bad_request,
    check_length,
    expect_within,
    no_content,
    not_found,
    parse_json,
    read_json,
    too_large,
)

# A definitions file is larger than any other body (RabbitMQ 3.10 refuses every body over
# some 8 MB): room for some hundred thousand queues and bindings, and little more, since
# the parsed document takes several times its size in memory.
DEFINITIONS_BODY_LIMIT = 32 << 20


def _definitions_limit(request: web.Request) -> int:
    return DEFINITIONS_BODY_LIMIT


def _attachment(request: web.Request, data: dict[str, Any]) -> web.Response:
    headers = {}
    download = request.query.get("download")
    if download:
        headers["Content-Disposition"] = f"attachment; filename={download}"
    return web.Response(text=json.dumps(data, separators=(",", ":")),
                        content_type="application/json", headers=headers)


async def get_definitions(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    if "vhost" in request.match_info:
        vhost = node.vhosts.get(request.match_info["vhost"])
        if vhost is None:
            raise not_found()
        return _attachment(request, export_vhost(node, vhost))
    return _attachment(request, export_all(node))


async def _body(request: web.Request) -> Any:
    """The document: the JSON body, or the ``file`` field of a form upload (the web UI's)."""
    if not request.content_type.startswith("multipart/"):
        return await read_json(request, DEFINITIONS_BODY_LIMIT)
    check_length(request, DEFINITIONS_BODY_LIMIT)
    try:  # aiohttp bounds what it reads of the form by the clone's limit
        form = await request.clone(client_max_size=DEFINITIONS_BODY_LIMIT).post()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(request, DEFINITIONS_BODY_LIMIT + 1, DEFINITIONS_BODY_LIMIT) from None
    upload = form.get("file")
    raw = upload.file.read() if isinstance(upload, web.FileField) else str(upload or "")
    return parse_json(raw)


async def post_definitions(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    only = request.match_info.get("vhost")
    if only is not None and only not in node.vhosts:
        raise not_found()
    body = await _body(request)
    try:
        import_definitions(node, body, only)
    except InvalidDefinition as exc:
        raise bad_request(exc.reason) from exc
    except AMQPError as exc:  # 400 whatever the code, unlike the other endpoints
        raise bad_request(exc.text) from exc
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/definitions", get_definitions)
    r.add_post("/api/definitions", post_definitions,
               expect_handler=expect_within(_definitions_limit))
    r.add_get("/api/definitions/{vhost}", get_definitions)
    r.add_post("/api/definitions/{vhost}", post_definitions,
               expect_handler=expect_within(_definitions_limit))
