"""topic: dot-separated words; ``*`` matches exactly one word, ``#`` zero or more.

Words may be empty (``a..b`` has three words, the middle one empty), but an empty key
has no words at all, as in RabbitMQ.
Bindings are kept in a trie of words; results per routing key are cached until the
bindings change, since real traffic repeats a small set of keys.
"""

from __future__ import annotations

from leveret.amqp.fields import FieldTable
from leveret.broker.exchanges.base import Destination, Exchange
from leveret.broker.message import Message

_CACHE_LIMIT = 4096


class _Node:
    __slots__ = ("children", "destinations")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.destinations: list[Destination] = []


def split_words(key: str) -> list[str]:
    """RabbitMQ splits an empty key into no words at all (not one empty word)."""
    return key.split(".") if key else []


def topic_matches(pattern: str, key: str) -> bool:
    """Whether a binding pattern matches a routing key (reference implementation)."""
    trie = _Node()
    _insert(trie, split_words(pattern), _HIT)
    return bool(_match(trie, split_words(key)))


class _Hit:
    """The one destination of topic_matches' throwaway trie."""

    kind = "hit"
    name = "hit"
    durable = False


_HIT = _Hit()


def _insert(root: _Node, words: list[str], destination: Destination) -> None:
    node = root
    for w in words:
        node = node.children.setdefault(w, _Node())
    if destination not in node.destinations:
        node.destinations.append(destination)


def _match(root: _Node, words: list[str]) -> list[Destination]:
    found: dict[int, Destination] = {}
    n = len(words)
    # Iterative walk over (node, position) states; `#` may consume zero or more words.
    stack = [(root, 0)]
    seen: set[tuple[int, int]] = set()
    while stack:
        node, i = stack.pop()
        state = (id(node), i)
        if state in seen:
            continue
        seen.add(state)
        if i == n:
            for d in node.destinations:
                found.setdefault(id(d), d)
        hash_node = node.children.get("#")
        if hash_node is not None:
            for j in range(i, n + 1):
                stack.append((hash_node, j))
        if i < n:
            child = node.children.get(words[i])
            if child is not None:
                stack.append((child, i + 1))
            star = node.children.get("*")
            if star is not None:
                stack.append((star, i + 1))
    return list(found.values())


class TopicExchange(Exchange):
    TYPE = "topic"

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: FieldTable | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        self._trie = _Node()
        self._cache: dict[str, list[Destination]] = {}

    def bindings_changed(self) -> None:
        trie = _Node()
        for b in self.bindings.values():
            _insert(trie, split_words(b.routing_key), b.destination)
        self._trie = trie
        self._cache = {}

    def route(self, message: Message, routing_key: str) -> list[Destination]:
        hit = self._cache.get(routing_key)
        if hit is None:
            hit = _match(self._trie, split_words(routing_key))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[routing_key] = hit
        return hit
