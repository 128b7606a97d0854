"""broker/persistence/store.py: the adapter between the broker and
``storage.Storage``, on a real Storage in a temporary directory; and
recovery building its vhosts through the server's factory
(broker/persistence/recovery.py)."""

from __future__ import annotations

import asyncio
import types

import pytest
from pamqp.commands import Basic
from pamqp.header import ContentHeader

import storage.wal
from broker.exchanges import DirectExchange, FanoutExchange
from broker.model import reasons
from broker.model.reasons import REASON_ACKED
from broker.persistence.recovery import recover
from broker.persistence.store import Store, check_reasons
from broker.queues.queue import Queue
from broker.vhost.namespace import VHost
from storage import Storage
from storage.topology import BindingRow, ExchangeRow, QueueRow

HEADER = ContentHeader(0, 1, Basic.Properties(delivery_mode=2)).marshal()


def test_broker_reasons_are_the_wal_reasons():
    """broker.model.reasons hands the WAL its own REASON_* values: the
    check the store runs at import passes for the real modules."""
    check_reasons(reasons, storage.wal)
    assert reasons.REASON_NAMES == storage.wal.REASON_NAMES


def test_a_reason_that_disagrees_is_an_import_error_naming_it():
    wrong = types.SimpleNamespace(**{name: value for name, value in vars(reasons).items()
                                     if name.startswith("REASON_")})
    wrong.REASON_PURGED = 40
    with pytest.raises(ImportError, match="REASON_PURGED = 40 in broker.model.reasons, 4 in storage.wal"):
        check_reasons(wrong, storage.wal)
    del wrong.REASON_PURGED, wrong.REASON_DEDUPLICATED
    with pytest.raises(ImportError, match="REASON_DEDUPLICATED = '\\(absent\\)'"):
        check_reasons(wrong, storage.wal)


def test_hot_operations_are_the_storage_methods_themselves(tmp_path):
    """No call layer on the per-message paths: the adapter's attributes are
    the storage's bound methods."""
    backend = Storage(tmp_path / "data")
    store = Store(backend)
    for name in ("persist_message", "record_delivered", "record_requeued", "record_removed", "forget_queue",
                 "read_message", "read_messages", "read_for_delivery", "delivery_count", "sync_soon"):
        method = getattr(store, name)
        assert method.__self__ is backend and method.__func__ is getattr(Storage, name)


def test_messages_written_through_the_store_are_read_back_and_removed(tmp_path):
    async def scenario():
        store = Store.in_directory(tmp_path / "data", segment_size=1 << 20)
        store.backend.open()
        store.persist_message(1, "/", "ex", "rk", ["a", "b"], HEADER, b"one")
        store.persist_message(2, "/", "ex", "rk", ["a"], HEADER, b"two")
        await store.sync()
        read = [store.read_message(1).body, [r.body for r in store.read_messages([1, 2])],
                store.read_for_delivery([2])[0][4]]
        holding = [store.queues_holding(1)]
        store.record_delivered(1, "a", "ctag", 1)
        store.record_removed(1, "a", REASON_ACKED)
        holding.append(store.queues_holding(1))
        store.record_removed(1, "b", REASON_ACKED)
        holding.append(store.queues_holding(1))
        holding.append(store.queues_holding(99))
        await store.sync()
        store.close()
        return read, holding
    read, holding = asyncio.run(scenario())
    assert read == [b"one", [b"one", b"two"], b"two"]
    assert holding == [("a", "b"), ("b",), None, None]


def test_topology_is_written_from_broker_objects(tmp_path):
    """A vhost on a store saves durable exchanges, queues and bindings as
    storage.topology rows; deleting them deletes the rows."""
    store = Store.in_directory(tmp_path / "data")
    store.backend.open()
    vhost = VHost("/v", store)
    source = DirectExchange("src", durable=True, arguments={"alternate-exchange": "ae"})
    fanout = FanoutExchange("fan", durable=True)
    gone = FanoutExchange("gone", durable=True)
    for exchange in (source, fanout, gone):
        vhost.add_exchange(exchange)
    queue = Queue(vhost, "q", durable=True, arguments={"x-max-length": 5})
    vhost.add_queue(queue)
    vhost.bind(source, queue, "rk", {"k": 1})
    vhost.bind(source, fanout, "to-fan", {})
    vhost.bind(source, gone, "x", {})
    vhost.unbind(source, gone, "x", {})
    vhost.delete_exchange(gone)
    assert store.backend.topology.load() == (
        [ExchangeRow("/v", "src", "direct", False, False, {"alternate-exchange": "ae"}),
         ExchangeRow("/v", "fan", "fanout", False, False, {})],
        [QueueRow("/v", "q", False, {"x-max-length": 5})],
        [BindingRow("/v", "src", "q", "queue", "rk", {"k": 1}),
         BindingRow("/v", "src", "fan", "exchange", "to-fan", {})])
    vhost.delete_queue(queue)
    assert store.backend.topology.load()[1:] == ([], [BindingRow("/v", "src", "fan", "exchange", "to-fan", {})])
    store.close()


def test_recovery_makes_missing_vhosts_with_the_given_factory(tmp_path):
    """recover() does not construct VHost itself: a vhost named in the
    stored topology comes from ``make_vhost``, with what the factory gives."""
    store = Store.in_directory(tmp_path / "data")
    store.backend.open()
    stored = VHost("/other", store)
    stored.add_queue(Queue(stored, "kept", durable=True))
    store.close()

    again = Store.in_directory(tmp_path / "data")
    flow, journal, made = object(), object(), []

    def make_vhost(name: str) -> VHost:
        made.append(name)
        return VHost(name, storage=again, flow=flow, dedup_journal=journal)

    vhosts = {"/": make_vhost("/")}
    recover(vhosts, again, make_vhost)
    again.close()
    assert made == ["/", "/other"]
    other = vhosts["/other"]
    assert other.storage is again and other.flow is flow and other.dedup_journal is journal
    assert list(other.queues) == ["kept"] and other.queues["kept"].stored
