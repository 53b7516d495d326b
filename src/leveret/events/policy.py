"""Retry policy: how many attempts, and how long to wait before each retry.

Delays are rounded to a ladder of round values (23 per decade, at most 17 % apart:
..., 0.5 s, 0.55 s, 0.6 s, 0.7 s, ...) because with the TTL scheme used on RabbitMQ each
distinct delay is a queue in the broker (see ``retry.py``): rounding keeps that to a handful
of queues per group while jitter still spreads retries out. leveret's delayed-message
exchange would take any delay; the same rounding applies there, so a policy behaves the
same on both brokers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

LADDER = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0, 2.2, 2.5, 2.8,
          3.0, 3.3, 3.6, 4.0, 4.5, 5.0, 5.5, 6.0, 7.0, 8.0, 9.0)


def quantize_ms(ms: float) -> int:
    """The ladder value nearest to ``ms`` (in log scale); 0 stays 0."""
    if ms < 1:
        return 0
    decade = 10 ** math.floor(math.log10(ms))
    candidates = [v * decade for v in LADDER] + [10 * decade]
    best = min(candidates, key=lambda v: abs(math.log(v / ms)))
    return max(1, round(best))


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first delivery: 3 means one try and two retries.

    The delay before retry n (after attempt n failed) is
    ``min(max_delay, initial_delay * multiplier ** (n - 1))``, moved by up to ``±jitter``
    of itself, capped again, then rounded to the ladder. Only exceptions in
    ``retry_on`` are retried; others are dead-lettered at once.
    """

    max_attempts: int = 5
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.2
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        return attempt < self.max_attempts and isinstance(error, self.retry_on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt ``attempt`` (1-based) failed, before quantizing."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        spread = base * self.jitter * (2 * self.random() - 1)
        return max(0.0, min(self.max_delay, base + spread))

    def delay_ms(self, attempt: int) -> int:
        return min(quantize_ms(self.delay(attempt) * 1000), round(self.max_delay * 1000))


NO_RETRY = RetryPolicy(max_attempts=1)
