"""A plain synchronous HTTP client for management APIs, so the same test code drives
leveret and the reference RabbitMQ: ``Api.call(method, path, body, user=, password=,
headers=)`` returns a ``Reply`` (status, headers, json)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text) if self.text else None

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are answers to compare, not to follow (RabbitMQ answers ``/api/`` with a
    301)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


class Api:
    def __init__(self, base: str, amqp_port: int | None = None, user: str = "guest",
                 password: str = "guest", stream_port: int | None = None) -> None:
        self.base = base.rstrip("/")
        self.amqp_port = amqp_port
        self.stream_port = stream_port
        self.user = user
        self.password = password

    def call(self, method: str, path: str, body: Any = None, *, user: str | None = None,
             password: str | None = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> Reply:
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if user != "":
            credentials = f"{user or self.user}:{password or self.password}"
            req.add_header("Authorization",
                           "Basic " + base64.b64encode(credentials.encode()).decode())
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with _opener.open(req, timeout=10) as r:
                return Reply(r.status, dict(r.headers), r.read().decode())
        except urllib.error.HTTPError as e:
            return Reply(e.code, dict(e.headers), e.read().decode())

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.call("PUT", path, body if body is not None else {}, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.call("POST", path, body if body is not None else {}, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.call("DELETE", path, **kw)

    def ok(self, method: str, path: str, body: Any = None) -> Reply:
        reply = self.call(method, path, body)
        assert reply.status in (200, 201, 204), (method, path, reply)
        return reply


def q(name: str) -> str:
    """A name as a URL path segment (vhosts like "/" included)."""
    return quote(name, safe="")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
