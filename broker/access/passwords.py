"""Password hashes as RabbitMQ stores them (rabbitmq.com/passwords.html,
"Computing RabbitMQ Password's Hash"): a 4-byte random salt, then
``base64(salt + H(salt + utf8(password)))`` with H the algorithm's hash.
New hashes use SHA-256 (``rabbit_password_hashing_sha256``, RabbitMQ's
default); MD5 and SHA-512 hashes are accepted from imported definitions.
Checks compare in constant time (``hmac.compare_digest``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

SHA256 = "rabbit_password_hashing_sha256"
SHA512 = "rabbit_password_hashing_sha512"
MD5 = "rabbit_password_hashing_md5"
#: RabbitMQ hashing module name -> hashlib name
ALGORITHMS = {SHA256: "sha256", SHA512: "sha512", MD5: "md5"}
SALT_SIZE = 4


def hash_password(password: str, algorithm: str = SHA256, salt: bytes | None = None) -> str:
    """The base64 hash of ``password`` with a fresh random 4-byte salt (or
    ``salt``). Raises ValueError for an algorithm not in ``ALGORITHMS``."""
    digest_name = _digest_name(algorithm)
    salt = os.urandom(SALT_SIZE) if salt is None else salt
    digest = hashlib.new(digest_name, salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def check_password(password_hash: str, algorithm: str, password: str) -> bool:
    """True when ``password`` hashes to ``password_hash`` (constant-time
    compare). An empty hash (a user without password, as RabbitMQ allows
    for certificate logins) or an undecodable one never matches."""
    if not password_hash:
        return False
    try:
        raw = base64.b64decode(password_hash, validate=True)
        digest_name = _digest_name(algorithm)
    except (binascii.Error, ValueError):
        return False
    salt, expected = raw[:SALT_SIZE], raw[SALT_SIZE:]
    actual = hashlib.new(digest_name, salt + password.encode("utf-8")).digest()
    return hmac.compare_digest(expected, actual)


def validate_hash(password_hash: str, algorithm: str) -> None:
    """Raise ValueError when an imported hash cannot be one of ``algorithm``
    (unknown algorithm, not base64, wrong length). "" (no password) is valid."""
    digest_name = _digest_name(algorithm)
    if not password_hash:
        return
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except binascii.Error:
        raise ValueError("password hash is not base64") from None
    if len(raw) != SALT_SIZE + hashlib.new(digest_name).digest_size:
        raise ValueError(f"password hash has the wrong length for {algorithm}")


def _digest_name(algorithm: str) -> str:
    try:
        return ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"unknown hashing algorithm '{algorithm}' (known: {', '.join(ALGORITHMS)})") from None
