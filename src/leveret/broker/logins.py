"""Refused logins and connections: why, how long the client waits to hear it, and log lines
that a flood of failures cannot multiply.

A refused login is answered ``failed_login_delay`` seconds after it failed (RabbitMQ holds a
refused client 3 s before it closes the socket), so a client retrying in a loop, or guessing
passwords one attempt after the other, gets one answer every few seconds instead of
thousands. Each refusal waits on its own timer: nothing blocks, other clients' logins (a
good one from the same address too) are answered at once, and a pending refusal is an open
connection whose timer is cancelled when the client hangs up, so there is no per-address
state to bound. Serialising one address's refusals would not slow a careful attacker
anyway: a good login is answered at once, so the absence of connection.tune already says
"refused".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from leveret.broker.clock import Timers

# RabbitMQ's delay before it closes a refused connection (rabbit_reader's silent close).
FAILED_LOGIN_DELAY = 3.0

# A flood of refusals logs at most LOG_BURST lines per reason per LOG_INTERVAL seconds,
# then one line saying how many it left out.
LOG_BURST = 10
LOG_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a login or a connection.open was refused: ``reason`` is a short fixed code (the
    log's ``reason`` field, and the unit of rate limiting), ``text`` says it to a person."""

    reason: str
    text: str


class _Window:
    __slots__ = ("logged", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.logged = 0
        self.suppressed = 0


class RateLimitedLog:
    """Warnings of which at most ``burst`` per ``interval`` seconds are logged for each
    reason; the rest are counted, and one line at the end of the interval says how many.
    Reasons are a small fixed set, so the windows kept here are too."""

    def __init__(self, logger: logging.Logger, timers: Timers, burst: int = LOG_BURST,
                 interval: float = LOG_INTERVAL) -> None:
        self.logger = logger
        self.timers = timers
        self.burst = burst
        self.interval = interval
        self._windows: dict[str, _Window] = {}

    def warning(self, reason: str, msg: str, *args: object, extra: dict[str, Any]) -> None:
        now = self.timers.clock.now()
        window = self._windows.get(reason)
        if window is None or now >= window.start + self.interval:
            window = self._windows[reason] = _Window(now)
        if window.logged < self.burst:
            window.logged += 1
            self.logger.warning(msg, *args, extra={**extra, "reason": reason})
            return
        window.suppressed += 1
        if window.suppressed == 1:
            self.timers.call_at(window.start + self.interval,
                                lambda: self._summarize(reason, window))

    def _summarize(self, reason: str, window: _Window) -> None:
        self.logger.warning(
            "suppressed %d similar messages (%s) in the last %g s", window.suppressed,
            reason, self.interval, extra={"event": "log_suppressed", "reason": reason,
                                         "suppressed": window.suppressed})
