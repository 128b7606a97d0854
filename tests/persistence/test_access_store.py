"""broker/persistence/access_store.py on a real topology database: a fresh
data directory is seeded once with the default user, vhost and
permissions; every write is read back by the next start; a data
directory of a version without the access tables keeps its vhosts."""

from __future__ import annotations

from broker.access import User, VirtualHost
from broker.access.passwords import SHA256, check_password
from broker.persistence.access_store import load_access
from broker.persistence.store import Store
from storage.topology import QueueRow


def opened(data_dir) -> Store:
    store = Store.in_directory(data_dir)
    store.backend.open()
    return store


def load(store, known=()):
    return load_access(store, list(known), "admin", "admin-pw", "main", ("guest",))


def test_fresh_directory_is_seeded_once(tmp_path):
    store = opened(tmp_path)
    access = load(store)
    admin = access.users["admin"]
    assert admin.tags == ("administrator",) and check_password(admin.password_hash, SHA256, "admin-pw")
    assert list(access.vhosts) == ["main"]
    grant = access.grants[("admin", "main")]
    assert (grant.configure, grant.write, grant.read) == (".*", ".*", ".*")
    access.remove_user("admin")  # deleted defaults are not seeded again
    store.close()
    store = opened(tmp_path)
    again = load(store)
    assert again.users == {} and list(again.vhosts) == ["main"] and again.grants == {}
    store.close()


def test_writes_are_read_back(tmp_path):
    store = opened(tmp_path)
    access = load(store)
    access.put_vhost(VirtualHost("shop", "the shop", ("prod",)))
    access.put_user(User("bob", "", SHA256, ("monitoring",)))
    access.put_permission("bob", "shop", "^b", "", ".*")
    access.put_limits("vhost", "shop", {"max-queues": 3, "max-connections": -1})
    access.put_limits("user", "bob", {"max-channels": 0})
    access.put_permission("admin", "shop", ".*", ".*", ".*")
    access.remove_permission("admin", "shop")
    store.close()
    store = opened(tmp_path)
    again = load(store)
    assert again.vhosts["shop"] == VirtualHost("shop", "the shop", ("prod",))
    assert again.users["bob"] == User("bob", "", SHA256, ("monitoring",))
    grant = again.grants[("bob", "shop")]
    assert (grant.configure, grant.write, grant.read, grant.active) == ("^b", "", ".*", True)
    assert ("admin", "shop") not in again.grants
    assert again.vhost_limits == {"shop": {"max-queues": 3}} and again.user_limits == {"bob": {"max-channels": 0}}
    again.remove_vhost("shop")
    store.close()
    store = opened(tmp_path)
    last = load(store)
    assert "shop" not in last.vhosts and ("bob", "shop") not in last.grants and last.vhost_limits == {}
    store.close()


def test_vhost_deletion_drops_its_topology_rows(tmp_path):
    store = opened(tmp_path)
    access = load(store)
    access.put_vhost(VirtualHost("gone"))
    store.backend.topology.save_queue(QueueRow("gone", "q", False, {}))
    store.backend.topology.save_queue(QueueRow("main", "q", False, {}))
    access.remove_vhost("gone")
    _exchanges, queues, _bindings = store.backend.topology.load()
    assert [(row.vhost, row.name) for row in queues] == [("main", "q")]
    store.close()


def test_vhosts_of_an_older_data_directory_are_kept(tmp_path):
    """A topology written before the access tables existed: its vhosts are
    registered, and the defaults are seeded (the old single user)."""
    store = opened(tmp_path)
    access = load(store, known=["/", "legacy"])
    assert list(access.vhosts) == ["main", "/", "legacy"]
    store.close()
