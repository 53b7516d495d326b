"""List endpoints' query parameters, as RabbitMQ's management API takes them: ``sort``
(a dotted key) and ``sort_reverse``, ``columns``, pagination with ``page``, ``page_size``,
``name`` and ``use_regex``, and ``disable_stats``.

Rows are filtered, sorted and cut here, after the handler built every one of them: the
handlers stay simple, and no broker has enough objects for that to matter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from leveret.management.http import ApiError, as_bool, bad_request, json_response

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


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
