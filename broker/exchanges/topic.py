"""Topic exchange: binding keys are dot-separated word patterns where ``*``
matches exactly one word and ``#`` zero or more words (AMQP 0-9-1 spec
§3.1.3.3 "The Topic Exchange Type";
https://www.rabbitmq.com/tutorials/tutorial-five-python.html).

Matching walks a trie of words, as RabbitMQ's rabbit_db_topic_exchange does;
there is no regex anywhere. Word splitting follows RabbitMQ exactly: the empty
key has zero words (so ``*`` does not match ``""`` but ``#`` does), and every
dot separates, so ``"a."`` is ``["a", ""]`` and ``"."`` is ``["", ""]``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from broker.exchanges.base import EMPTY, Exchange

#: Routing keys remembered per exchange; the cache is dropped whole when full,
#: which is cheaper than LRU bookkeeping on the hot path.
CACHE_SIZE = 4096


class _Node:
    __slots__ = ("children", "dests")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        # destination -> number of bindings ending at this node
        self.dests: dict[Any, int] = {}


def split_words(key: str) -> list[str]:
    """Split a routing or binding key into words, RabbitMQ style
    (rabbit_db_topic_exchange:split_topic_key): ``""`` has no words."""
    return key.split(".") if key else []


def _pattern_words(binding_key: str) -> list[str]:
    # "#.#" matches exactly what "#" matches; collapsing runs of "#" keeps
    # the walk from branching combinatorially on keys like "#.#.#.#".
    words = split_words(binding_key)
    out: list[str] = []
    for w in words:
        if w == "#" and out and out[-1] == "#":
            continue
        out.append(w)
    return out


class TopicExchange(Exchange):
    """Routes to destinations whose binding pattern matches the routing key.

    ``route`` returns an internal tuple of destinations (each once, however
    many bindings matched), cached per routing key until the next
    bind/unbind.
    """

    type_name = "topic"

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        self._root = _Node()
        self._cache: dict[str, tuple] = {}

    def route(self, routing_key: str, get_headers=None) -> Collection:
        cache = self._cache
        hit = cache.get(routing_key)
        if hit is not None:
            return hit
        out: dict[Any, int] = {}
        words = routing_key.split(".") if routing_key else []
        _match(self._root, words, 0, len(words), out)
        result = tuple(out) if out else EMPTY
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[routing_key] = result
        return result

    def _add(self, destination: Any, binding_key: str, arguments: dict) -> None:
        node = self._root
        for w in _pattern_words(binding_key):
            child = node.children.get(w)
            if child is None:
                child = node.children[w] = _Node()
            node = child
        node.dests[destination] = node.dests.get(destination, 0) + 1
        self._cache.clear()

    def _remove(self, destination: Any, binding_key: str, arguments: dict) -> None:
        path: list[tuple[_Node, str]] = []
        node = self._root
        for w in _pattern_words(binding_key):
            path.append((node, w))
            node = node.children[w]
        n = node.dests[destination] - 1
        if n:
            node.dests[destination] = n
        else:
            del node.dests[destination]
            # prune now-empty nodes so dead branches cost nothing at match time
            while path and not node.dests and not node.children:
                parent, w = path.pop()
                del parent.children[w]
                node = parent
        self._cache.clear()


def _match(node: _Node, words: list[str], i: int, n: int, out: dict) -> None:
    """Collect into ``out`` the destinations of every pattern under ``node``
    that matches ``words[i:]`` (the same search as RabbitMQ's trie_match)."""
    children = node.children
    if i == n:
        if node.dests:
            out.update(node.dests)
        if children:
            hash_node = children.get("#")
            if hash_node is not None:
                _match(hash_node, words, n, n, out)
        return
    if not children:
        return
    child = children.get(words[i])
    if child is not None:
        _match(child, words, i + 1, n, out)
    child = children.get("*")
    if child is not None:
        _match(child, words, i + 1, n, out)
    child = children.get("#")
    if child is not None:
        # "#" swallows zero, one, ... or all of the remaining words
        for j in range(i, n + 1):
            _match(child, words, j, n, out)
