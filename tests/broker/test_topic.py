"""Topic matching, including RabbitMQ's edge cases (empty words, `#` matching nothing)."""

from __future__ import annotations

import pytest

from leveret.broker.exchanges.topic import topic_matches


@pytest.mark.parametrize(("pattern", "key", "expected"), [
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a..c", True),
    ("a.*.c", "a.c", False),
    ("*", "", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("#", "", True),
    ("#", "a.b.c", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", "b.a", False),
    ("#.c", "c", True),
    ("#.c", "a.b.c", True),
    ("#.c", "a.b.c.d", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.b.b.c", True),
    ("a.#.c", "a.b.d", False),
    ("#.#", "", True),
    ("#.#", "a.b", True),
    ("*.#", "", False),
    ("*.#", "a", True),
    ("#.*", "a.b", True),
    ("*.*", "a.", True),
    ("", "", True),
    ("", "a", False),
    ("a..b", "a..b", True),
    ("a.#.#.b", "a.b", True),
])
def test_topic_matches(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected
