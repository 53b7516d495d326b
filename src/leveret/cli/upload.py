"""A request body too large to hold, sent from a file: the headers go first with
``Expect: 100-continue``, so a server that will refuse the size says so before a byte of
the body leaves (leveret answers 413 from the Content-Length), then the body in chunks.

    answer = send(connection, "POST", path, headers, length, chunks)
    answer.status, answer.reason, answer.body

A server that neither agrees nor refuses within CONTINUE_WAIT gets the body anyway, as
RFC 9110 (10.1.1) has clients do.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

CONTINUE_WAIT = 2.0  # seconds


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    body: bytes


def send(connection: http.client.HTTPConnection, method: str, path: str,
         headers: dict[str, str], length: int, chunks: Iterable[bytes]) -> Answer:
    """Send the request, the body only if the server does not answer before wanting it."""
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(length))
    connection.putheader("Expect", "100-continue")
    connection.endheaders()
    assert connection.sock is not None  # endheaders connected it
    early = _early_answer(connection.sock)
    if early is not None:
        return early
    try:
        for chunk in chunks:
            connection.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading: its answer, if it sent one, says why
    response = connection.getresponse()
    return Answer(response.status, response.reason, response.read())


def _early_answer(sock: socket.socket) -> Answer | None:
    """The server's final answer if it gives one before the body; None after its
    "100 Continue", or after CONTINUE_WAIT seconds of silence."""
    pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
    if not pending and not select.select([sock], [], [], CONTINUE_WAIT)[0]:
        return None
    # Nothing follows an interim answer until the body is sent, so this reader takes no
    # bytes of the final answer from the socket in that case.
    with sock.makefile("rb") as reader:
        line = reader.readline(65537).decode("iso-8859-1")
        parts = line.rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():  # closed, or not HTTP
            raise http.client.BadStatusLine(line)
        status = int(parts[1])
        answer_headers = http.client.parse_headers(reader)
        if status == http.client.CONTINUE:
            return None
        body = reader.read(int(answer_headers.get("Content-Length") or 0))
        return Answer(status, parts[2] if len(parts) > 2 else "", body)
