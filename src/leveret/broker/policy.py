"""Policies: queue and exchange arguments applied by name pattern, as in RabbitMQ.

Operators set them without touching application code. One policy applies to an entity:
the highest-priority one whose pattern matches its name (``apply-to`` queues, exchanges or
all). Its definition keys are the argument names without ``x-`` (``message-ttl``,
``max-length``, ``dead-letter-exchange``, ...; ``alternate-exchange`` for exchanges).
Where a queue also has the argument, the lower value wins for limits and TTLs, and the
queue's own argument wins otherwise (RabbitMQ's rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from leveret.amqp.fields import FieldTable
from leveret.broker.arguments import parse_interval
from leveret.errors import PreconditionFailed

# Keys where the stricter (smaller) of policy and argument applies.
LOWER_WINS = {"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes",
              "x-delivery-limit"}
APPLY_TO = ("all", "queues", "exchanges")


@dataclass
class Policy:
    name: str
    pattern: str
    definition: dict[str, Any]
    priority: int = 0
    apply_to: str = "all"
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.apply_to not in APPLY_TO:
            raise PreconditionFailed(f"invalid apply-to '{self.apply_to}' for policy "
                                     f"'{self.name}'; expected one of {', '.join(APPLY_TO)}")
        try:
            self.regex = re.compile(self.pattern)
        except re.error as exc:
            raise PreconditionFailed(f"invalid pattern '{self.pattern}' for policy "
                                     f"'{self.name}': {exc}") from None

    def applies(self, kind: str, name: str) -> bool:
        wanted = "queues" if kind == "queue" else "exchanges"
        return self.apply_to in ("all", wanted) and self.regex.search(name) is not None

    def as_arguments(self) -> FieldTable:
        return {k if k == "alternate-exchange" else f"x-{k}": v
                for k, v in self.definition.items()}


def choose(policies: dict[str, Policy], kind: str, name: str) -> Policy | None:
    """The policy for an entity: the highest priority match (ties: the later name)."""
    matching = [p for p in policies.values() if p.applies(kind, name)]
    if not matching:
        return None
    return max(matching, key=lambda p: (p.priority, p.name))


def merge(arguments: FieldTable, policy: Policy | None) -> FieldTable:
    """An entity's effective arguments under a policy."""
    if policy is None:
        return arguments
    merged = dict(arguments)
    for key, value in policy.as_arguments().items():
        own = arguments.get(key)
        if own is None:
            merged[key] = value
        elif key in LOWER_WINS and isinstance(value, int) and isinstance(own, int):
            merged[key] = min(own, value)
        elif key == "x-max-age" and isinstance(value, str) and isinstance(own, str):
            # a stream's age limit: the shorter one applies, as for the other limits
            ages = [(parse_interval(v), v) for v in (own, value)]
            if all(seconds is not None for seconds, _ in ages):
                merged[key] = min(ages, key=lambda a: a[0] or 0)[1]
    return merged
