"""Topic exchange matching. Expected results were checked against RabbitMQ
3.10 on the wire: the empty routing key has zero words (``*`` does not match
it, ``#`` does), and every dot separates a word, empty words included."""

import pytest

from broker.exchanges import TopicExchange
from broker.exchanges import topic as topic_mod


def matches(pattern, key):
    x = TopicExchange("t")
    x.bind("q", pattern)
    return list(x.route(key, None)) == ["q"]


CASES = [
    # (pattern, routing key, match?)
    ("#", "", True), ("#", "a", True), ("#", "a.b.c", True), ("#", ".", True),
    ("*", "", False), ("*", "a", True), ("*", "a.b", False), ("*", "*", True),
    ("*", "#", True),
    ("", "", True), ("", "a", False), ("", ".", False),
    ("a", "a", True), ("a", "a.b", False), ("a", "b", False),
    ("a.#", "a", True), ("a.#", "a.b", True), ("a.#", "a.b.c", True),
    ("a.#", "b.a", False), ("a.#", "", False), ("a.#", "a.", True),
    ("#.b", "b", True), ("#.b", "a.b", True), ("#.b", "x.y.b", True),
    ("#.b", "b.x", False), ("#.b", "", False),
    ("*.*", "a.b", True), ("*.*", "a", False), ("*.*", "a.b.c", False),
    ("*.*", ".", True), ("*.*", ".a", True), ("*.*", "a.", True), ("*.*", "", False),
    ("a..b", "a..b", True), ("a..b", "a.b", False), ("a.*.b", "a..b", True),
    ("a.*.b", "a.x.b", True), ("a.*.b", "a.b", False),
    (".a", ".a", True), (".a", "a", False), ("a.", "a.", True), ("a.", "a", False),
    (".", ".", True), (".", "", False), ("*.*.*", "..", True),
    ("#.#", "", True), ("#.#", "a", True), ("#.#", "a.b.c", True),
    ("#.#.b", "b", True), ("#.#.b", "a.x.b", True), ("a.#.#", "a", True),
    ("a.*.#", "a", False), ("a.*.#", "a.b", True), ("a.*.#", "a.b.c.d", True),
    ("a.#.b", "a.b", True), ("a.#.b", "a.x.b", True), ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.b.c", False), ("a.#.b", "a..b", True),
    ("*.#", "", False), ("*.#", "a", True), ("*.#", "a.b", True),
    ("#.*", "", False), ("#.*", "a", True), ("#.*", "a.b.c", True),
    ("#.a.#", "a", True), ("#.a.#", "x.a.y", True), ("#.a.#", "x.y", False),
    ("#.a.#", "b.a", True),
    ("a.b", "a.b", True), ("a.b", "a.bb", False), ("ab", "a.b", False),
    ("a.*", "a.*", True), ("a.#", "a.#", True),
]


@pytest.mark.parametrize("pattern, key, expected", CASES)
def test_topic_patterns(pattern, key, expected):
    assert matches(pattern, key) is expected


def test_overlapping_bindings_deliver_once():
    x = TopicExchange("t")
    for p in ("#", "a.*", "a.b", "*.b", "a.#"):
        x.bind("q1", p)
    x.bind("q2", "a.b")
    assert sorted(x.route("a.b", None)) == ["q1", "q2"]
    assert len(x.route("a.b", None)) == 2


def test_unbind_leaves_other_bindings():
    x = TopicExchange("t")
    x.bind("q1", "a.*")
    x.bind("q1", "a.#")
    x.bind("q2", "a.b")
    assert sorted(x.route("a.b", None)) == ["q1", "q2"]
    assert x.unbind("q1", "a.*")
    assert sorted(x.route("a.b", None)) == ["q1", "q2"]
    assert list(x.route("a", None)) == ["q1"]
    assert x.unbind("q1", "a.#")
    assert list(x.route("a.b", None)) == ["q2"]
    assert list(x.route("a", None)) == []
    assert not x.unbind("q1", "a.#")
    assert x.unbind("q2", "a.b")
    assert not x._root.children  # trie pruned back to the root


def test_hash_runs_share_a_node_but_stay_distinct_bindings():
    x = TopicExchange("t")
    assert x.bind("q", "#")
    assert x.bind("q", "#.#")
    assert len(x.bindings()) == 2
    x.unbind("q", "#")
    assert list(x.route("a.b", None)) == ["q"]
    x.unbind("q", "#.#")
    assert list(x.route("a.b", None)) == []


def test_cache_invalidated_on_bind_unbind_and_destination_removal():
    x = TopicExchange("t")
    x.bind("q1", "a.*")
    assert list(x.route("a.b", None)) == ["q1"]
    x.bind("q2", "#")
    assert sorted(x.route("a.b", None)) == ["q1", "q2"]
    x.unbind("q1", "a.*")
    assert list(x.route("a.b", None)) == ["q2"]
    x.unbind_destination("q2")
    assert list(x.route("a.b", None)) == []


def test_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(topic_mod, "CACHE_SIZE", 8)
    x = TopicExchange("t")
    x.bind("q", "k.*")
    for i in range(50):
        assert list(x.route(f"k.{i}", None)) == ["q"]
        assert len(x._cache) <= 8


def test_many_hashes_do_not_explode():
    x = TopicExchange("t")
    x.bind("q", ".".join(["#"] * 30) + ".z")
    key = ".".join(["w"] * 200)
    assert list(x.route(key, None)) == []
    assert list(x.route(key + ".z", None)) == ["q"]


def test_trie_shares_prefixes():
    x = TopicExchange("t")
    x.bind("q1", "a.b.c")
    x.bind("q2", "a.b.d")
    x.bind("q3", "a.*.c")
    assert sorted(x.route("a.b.c", None)) == ["q1", "q3"]
    assert list(x.route("a.b.d", None)) == ["q2"]
    assert list(x.route("a.x.c", None)) == ["q3"]
    assert list(x._root.children) == ["a"]
