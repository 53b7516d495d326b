"""The management HTTP API as the admin commands use it: a small blocking client, its
errors, and the exit statuses they map to (rabbitmqctl's, from sysexits.h)."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leveret.cli import upload

DEFAULT_URL = "http://127.0.0.1:15672"

# Exit statuses, as rabbitmqctl uses them (sysexits.h): scripts can tell "the broker said no"
# from "there is no broker" and "wrong credentials".
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 69
EXIT_NOPERM = 77


class AdminError(Exception):
    """A failure to report as one line on stderr, with the exit status to return."""

    def __init__(self, message: str, status: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.status = status


class ApiError(AdminError):
    """The API answered with an HTTP error status."""

    def __init__(self, code: int, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason,
                         EXIT_NOPERM if code in (401, 403) else EXIT_REFUSED)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Resource:
    """What a request is about, to say what is missing when the API answers 404."""

    kind: str
    name: str
    vhost: str | None = None

    def __str__(self) -> str:
        where = f" in vhost '{self.vhost}'" if self.vhost is not None else ""
        return f"{self.kind} '{self.name}'{where}"


def segment(segment: str) -> str:
    """One path segment of the API, ``/`` included (the default vhost is ``%2F``)."""
    return urllib.parse.quote(segment, safe="")


def _error_reason(raw: bytes, fallback: str) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip() or fallback
    if isinstance(body, dict):
        return str(body.get("reason") or body.get("error") or fallback)
    return fallback


class ManagementAPI:
    """A small blocking client of the management HTTP API (RabbitMQ's shape)."""

    def __init__(self, url: str, user: str, password: str, *, cacert: str | None = None,
                 insecure: bool = False, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.base = self.url if self.url.endswith("/api") else self.url + "/api"
        self.user = user
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._authorization = f"Basic {token}"
        self.timeout = timeout
        context: ssl.SSLContext | None = None
        if self.base.startswith("https:"):
            context = ssl.create_default_context(cafile=cacert)
            if insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        self._context = context
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def call(self, method: str, path: str, body: Any = None, *,
             about: Resource | None = None, headers: dict[str, str] | None = None,
             query: dict[str, str] | None = None) -> Any:
        """Send one request; return the decoded JSON answer (None when there is none)."""
        url = self.base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", self._authorization)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc.code, _error_reason(exc.read(), exc.reason), about
                                   ) from None
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        return self._decoded(raw, method, path)

    def upload(self, method: str, path: str, length: int, chunks: Iterable[bytes], *,
               about: Resource | None = None) -> Any:
        """``call`` for a JSON body too large to hold, given as ``length`` bytes in
        ``chunks``: the server may refuse it before any is sent (``upload.send``)."""
        url = urllib.parse.urlsplit(self.base + path)
        connection = (http.client.HTTPSConnection(url.hostname or "", url.port,
                                                  timeout=self.timeout, context=self._context)
                      if url.scheme == "https" else
                      http.client.HTTPConnection(url.hostname or "", url.port,
                                                 timeout=self.timeout))
        headers = {"Authorization": self._authorization, "Content-Type": "application/json"}
        try:
            answer = upload.send(connection, method, url.path, headers, length, chunks)
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        finally:
            connection.close()
        if answer.status >= 400:
            raise self._http_error(answer.status, _error_reason(answer.body, answer.reason),
                                   about)
        return self._decoded(answer.body, method, path)

    def _decoded(self, raw: bytes, method: str, path: str) -> Any:
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise AdminError(f"the management API at {self.url} answered {method} {path} "
                             "with something that is not JSON") from None

    def get(self, path: str, *, about: Resource | None = None) -> Any:
        return self.call("GET", path, about=about)

    def _unreachable(self, reason: object) -> AdminError:
        if isinstance(reason, ssl.SSLCertVerificationError):
            return AdminError(f"the TLS certificate of {self.url} is not trusted "
                              f"({reason.verify_message}): use --cacert FILE, or --insecure",
                              EXIT_UNREACHABLE)
        detail = "" if isinstance(reason, ConnectionRefusedError) else f" ({reason})"
        return AdminError(f"cannot reach the management API at {self.url}{detail}: is "
                          "`leveret serve` running? (use --url)", EXIT_UNREACHABLE)

    def _http_error(self, code: int, reason: str, about: Resource | None) -> ApiError:
        if code == 401 and reason.lower() in ("login failed", "unauthorized", "unauthorised"):
            return ApiError(code, reason, f"authentication failed for user {self.user}")
        if code in (401, 403):
            return ApiError(code, reason, f"user '{self.user}' is not allowed to do that: "
                                          f"{reason}")
        if code == 404 and about is not None:
            return ApiError(code, reason, self._missing(about))
        if code == 404:
            return ApiError(code, reason, f"not found: {reason}")
        return ApiError(code, reason, reason if 400 <= code < 500 else
                        f"the management API failed (HTTP {code}): {reason}")

    def _missing(self, about: Resource) -> str:
        """Name what is missing: the vhost itself, or the object in it."""
        if about.vhost is not None and about.kind != "vhost":
            try:
                self.call("GET", f"/vhosts/{segment(about.vhost)}")
            except ApiError as exc:
                if exc.code == 404:
                    return f"vhost '{about.vhost}' not found"
            except AdminError:
                pass
            return f"{about.kind} '{about.name}' not found in vhost '{about.vhost}'"
        return f"{about.kind} '{about.name}' not found"
