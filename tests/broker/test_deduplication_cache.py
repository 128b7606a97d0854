"""broker/vhost/deduplication.py DedupCache and broker/exchanges/deduplication.py
argument validation (the plugin rabbitmq-message-deduplication's rules)."""

from __future__ import annotations

import pytest

from broker.vhost.deduplication import DedupCache, key_of
from broker.exchanges.deduplication import DeduplicationExchange, positive_int
from protocol.errors import AMQPError


def test_duplicate_until_evicted_by_size():
    cache = DedupCache(2)
    assert not cache.seen("a", now=0)
    assert cache.seen("a", now=1)
    assert not cache.seen("b", now=2)
    assert not cache.seen("c", now=3)  # evicts "a", the oldest
    assert len(cache) == 2
    assert not cache.seen("a", now=4)
    assert cache.seen("c", now=5)


def test_ttl_from_cache_and_from_message():
    cache = DedupCache(10, ttl_ms=1000)
    assert not cache.seen("a", now=0.0)
    assert cache.seen("a", now=0.9)
    assert not cache.seen("a", now=1.1)  # expired: routed again, and cached again
    assert cache.seen("a", now=1.2)
    assert not cache.seen("b", ttl_ms=5000, now=0.0)
    assert cache.seen("b", now=4.0)
    assert not cache.seen("b", now=5.5)


def test_no_ttl_means_forever():
    cache = DedupCache(10)
    cache.seen("a", now=0)
    assert cache.seen("a", now=1e9)


def test_keys_treat_str_and_bytes_alike():
    assert key_of(b"abc") == key_of("abc")
    assert key_of(True) != key_of(1)
    assert key_of([1, 2]) == key_of([1, 2])


@pytest.mark.parametrize("value, expected", [(5, 5), ("12", 12), (b"7", 7), (0, None), (-3, None), ("x", None),
                                             (True, None), (1.5, None)])
def test_positive_int(value, expected):
    assert positive_int(value) == expected


@pytest.mark.parametrize("arguments", [{}, {"x-cache-size": 0}, {"x-cache-size": 3, "x-cache-ttl": 0},
                                       {"x-cache-size": 3, "x-cache-persistence": "x"}])
def test_exchange_arguments_refused(arguments):
    with pytest.raises(AMQPError) as info:
        DeduplicationExchange("x", arguments=arguments)
    assert info.value.reply_code == 406


def test_exchange_routes_as_fanout():
    x = DeduplicationExchange("x", arguments={"x-cache-size": "10", "x-cache-ttl": 100})
    a, b = object(), object()
    x.bind(a, "one")
    x.bind(b, "two")
    assert list(x.route("anything", None)) == [a, b]
    assert (x.cache_size, x.cache_ttl, x.cache_persistence) == (10, 100, "memory")
