"""broker.access without a broker: password hashes (rabbitmq.com/passwords.html),
loopback-only users (RabbitMQ's loopback_users), permission patterns
(rabbitmq.com/access-control.html) and limit values."""

from __future__ import annotations

import base64
import hashlib

import pytest

from broker.access import AccessControl, Grant, User
from broker.access.control import UNKNOWN_USER, WRONG_PASSWORD, is_loopback
from broker.access.limits import validated
from broker.access.passwords import MD5, SHA256, SHA512, check_password, hash_password, validate_hash
from protocol.errors import AMQPError


@pytest.mark.parametrize("algorithm, digest", [(MD5, hashlib.md5), (SHA256, hashlib.sha256),
                                               (SHA512, hashlib.sha512)])
def test_imported_hashes_verify(algorithm, digest):
    salt = b"\xaa\xbb\xcc\xdd"
    password_hash = base64.b64encode(salt + digest(salt + "pässword".encode()).digest()).decode()
    validate_hash(password_hash, algorithm)
    assert check_password(password_hash, algorithm, "pässword")
    assert not check_password(password_hash, algorithm, "pässwort")


def test_new_hashes_are_salted_sha256():
    first, second = hash_password("pw"), hash_password("pw")
    assert first != second  # random salt
    assert len(base64.b64decode(first)) == 4 + 32
    assert check_password(first, SHA256, "pw") and check_password(second, SHA256, "pw")


@pytest.mark.parametrize("password_hash, algorithm", [
    ("", SHA256), ("not base64!", SHA256), (base64.b64encode(b"short").decode(), SHA256),
    (hash_password("pw"), "rabbit_password_hashing_sha1")])
def test_bad_hashes_never_match(password_hash, algorithm):
    assert not check_password(password_hash, algorithm, "pw")


@pytest.mark.parametrize("password_hash, algorithm", [
    ("not base64!", SHA256), (hash_password("pw"), SHA512), (hash_password("pw"), "sha1")])
def test_bad_hashes_are_refused_on_import(password_hash, algorithm):
    with pytest.raises(ValueError):
        validate_hash(password_hash, algorithm)


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("192.168.1.2", False), ("::ffff:10.0.0.1", False), ("fe80::1%eth0", False),
    ("?", False)])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_loopback_user_refused_from_another_address():
    """RabbitMQ's loopback_users: guest logs in from loopback only; the
    reason (for the log) is RabbitMQ's."""
    access = AccessControl(loopback_users=("guest",))
    access.users["guest"] = User("guest", hash_password("guest"), SHA256)
    access.users["bob"] = User("bob", hash_password("pw"), SHA256)
    assert access.authenticate("guest", "guest", "127.0.0.1")[0] is not None
    assert access.authenticate("guest", "guest", "10.1.2.3") == (None, "user 'guest' can only connect via localhost")
    assert access.authenticate("bob", "pw", "10.1.2.3")[0] is not None
    assert access.authenticate("bob", "nope", "10.1.2.3") == (None, WRONG_PASSWORD)
    assert access.authenticate("eve", "pw", "127.0.0.1") == (None, UNKNOWN_USER)


def test_grant_patterns_search_anywhere_and_empty_matches_nothing():
    grant = Grant("bob", "/", "^conf", "amq\\.default|log", "")
    grant.check("configure", "queue", "conf-1")
    grant.check("write", "exchange", "")  # the default exchange is amq.default
    grant.check("write", "exchange", "app.logs")  # unanchored, as Erlang's re:run
    with pytest.raises(AMQPError) as info:
        grant.check("read", "queue", "anything")
    assert (info.value.reply_code, info.value.text) == (
        403, "access to queue 'anything' in vhost '/' refused for user 'bob'")
    grant.revoke()
    with pytest.raises(AMQPError):
        grant.check("configure", "queue", "conf-1")
    with pytest.raises(ValueError):
        grant.set("(", ".*", ".*")
    assert not grant.active  # a failed change leaves it as it was


def test_limit_values():
    assert validated("vhost", {"max-connections": 3, "max-queues": -1}) == {"max-connections": 3}
    assert validated("user", {"max-channels": 0}) == {"max-channels": 0}
    for kind, limits in (("vhost", {"max-channels": 1}), ("user", {"max-queues": 1}),
                         ("user", {"max-connections": True}), ("vhost", {"max-queues": 1.5})):
        with pytest.raises(ValueError):
            validated(kind, limits)


def test_external_login_needs_an_existing_user():
    access = AccessControl(loopback_users=("guest",))
    access.users["guest"] = User("guest", hash_password("guest"), SHA256)
    access.users["cn-client"] = User("cn-client", "", SHA256)  # no password: certificate logins only
    assert access.authenticate_external("cn-client", "10.0.0.5")[0] is not None
    assert access.authenticate("cn-client", "", "127.0.0.1") == (None, WRONG_PASSWORD)
    assert access.authenticate_external("someone", "127.0.0.1") == (None, UNKNOWN_USER)
    assert access.authenticate_external("guest", "10.0.0.5")[0] is None
