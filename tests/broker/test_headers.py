"""Headers exchange matching: x-match all/any and their -with-x forms."""

from __future__ import annotations

import pytest

from leveret.broker.exchanges.headers import headers_match


@pytest.mark.parametrize(("binding", "headers", "expected"), [
    ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1, "b": "x"}, True),
    ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1}, False),
    ({"x-match": "any", "a": 1, "b": "x"}, {"a": 1}, True),
    ({"x-match": "any", "a": 1, "b": "x"}, {"a": 2}, False),
    ({"a": 1}, {"a": 1, "c": 3}, True),
    ({"x-match": "all"}, {"a": 1}, True),
    ({"x-match": "any"}, {"a": 1}, False),
    ({"x-match": "all", "a": None}, {"a": "anything"}, True),
    ({"x-match": "all", "a": None}, {}, False),
    ({"x-match": "all", "x-a": 1}, {}, True),
    ({"x-match": "all-with-x", "x-a": 1}, {}, False),
    ({"x-match": "all-with-x", "x-a": 1}, {"x-a": 1}, True),
    ({"x-match": "any-with-x", "x-a": 1}, {"x-a": 1}, True),
    ({"x-match": "any", "x-a": 1}, {"x-a": 1}, False),
    ({"x-match": "all", "a": True}, {"a": 1}, False),
])
def test_headers_match(binding: dict, headers: dict, expected: bool) -> None:
    assert headers_match(binding, headers) is expected
