"""What aiohttp logs about a request it could not serve, kept to a line now and then.

Anyone who can reach the port can send a request line of 100 KB or a header aiohttp
refuses; aiohttp answers 400 and logs the parse error with a traceback at ERROR, once per
request. Through ``server_logger()`` such a client error becomes one WARNING line without a
traceback, and every record of this logger (a handler's crash keeps its traceback) passes
at most once per ``interval`` seconds, saying how many were held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

INTERVAL = 10.0


class OnceInAWhile(logging.Filter):
    """Lets a record through at most every ``interval`` seconds; a client's malformed
    request is shortened to one WARNING line."""

    def __init__(self, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._next = 0.0
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        if now < self._next:
            self._held += 1
            return False
        self._next = now + self.interval
        message = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):  # the client's fault, not the broker's
            message = f"{message}: {error.code} {error.message}"[:300]
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        if self._held:
            message += f" ({self._held} more since, not logged)"
            self._held = 0
        record.msg, record.args = message, ()
        return True


def server_logger(name: str = "leveret.management.server") -> logging.Logger:
    """The logger to hand aiohttp's server, filtered once however often it is asked for."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, OnceInAWhile) for f in logger.filters):
        logger.addFilter(OnceInAWhile())
    return logger
