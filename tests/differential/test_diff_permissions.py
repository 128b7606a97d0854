"""Permissions, logins and password hashes, Leveret against the reference
RabbitMQ 3.10 (rabbitmq.com/access-control.html): the same users,
permissions and topology are set up on both (RabbitMQ through its
management HTTP API, the same operations as ``reference-rabbitmq ctl
add_user`` / ``set_permissions`` but in milliseconds instead of seconds;
Leveret with its admin service, broker/admin), then every operation below
is tried on both with pika and must give the same observation: allowed,
or the same reply code and text.

The permission patterns of the user under test, ``h3_pu``, in vhost
``h3_diff``: configure ``^(c-|cr-)``, write ``^(w-|cr-|amq\\.default$)``,
read ``^(r-|cr-)``; so a name starting with c-, w-, r- grants one
permission, cr- two, x- none."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.request
from urllib.parse import quote, urlparse

import pika
import pytest
from pika.exceptions import AMQPChannelError, AMQPConnectionError, ChannelClosedByBroker

from broker.access.passwords import check_password, hash_password
from tests.interop.inprocess_broker import InProcessBroker

VHOST = "h3_diff"
USER, PASSWORD = "h3_pu", "h3-pw"
PUBLISHER = "h3_pub"  # write on amq.default only
PERMISSIONS = ("^(c-|cr-)", "^(w-|cr-|amq\\.default$)", "^(r-|cr-)")
QUEUES = ("r-q", "w-q", "c-q", "x-q", "c-del", "x-del")
EXCHANGES = ("r-x", "w-x", "c-x", "x-x", "c-xdel", "x-xdel")
#: a server-named queue differs from run to run
SERVER_NAMED = re.compile(r"amq\.gen-[A-Za-z0-9_-]+")


def management(reference_url: str, method: str, path: str, body: object = None) -> object:
    """A call of the reference's management HTTP API (its AMQP port + 10000,
    as ../shared/tools/reference-rabbitmq sets it up), as guest; the
    decoded JSON answer, None when empty."""
    parsed = urlparse(reference_url)
    request = urllib.request.Request(
        f"http://{parsed.hostname}:{parsed.port + 10000}/api/{path}", method=method,
        data=None if body is None else json.dumps(body).encode(), headers={"content-type": "application/json"})
    request.add_header("authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=30) as answer:
        text = answer.read()
    return json.loads(text) if text else None


@pytest.fixture
def reference_api(reference_url) -> str:
    """The reference's AMQP URL, once its management API answers (else skip)."""
    try:
        management(reference_url, "GET", "overview")
    except OSError as exc:
        pytest.skip(f"the reference RabbitMQ's management API does not answer ({exc})")
    return reference_url


def setup_reference(reference_url: str) -> None:
    """Import the vhost, the users with password hashes made by Leveret
    (so RabbitMQ accepting the logins also checks Leveret's hash format)
    and the permissions, as one definitions document."""
    management(reference_url, "POST", "definitions", {
        "vhosts": [{"name": VHOST}],
        "users": [{"name": name, "password_hash": hash_password(PASSWORD),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""} for name in (USER, PUBLISHER)],
        "permissions": [
            {"user": USER, "vhost": VHOST, **dict(zip(("configure", "write", "read"), PERMISSIONS))},
            {"user": PUBLISHER, "vhost": VHOST, "configure": "", "write": "^amq\\.default$", "read": ""},
            {"user": "guest", "vhost": VHOST, "configure": ".*", "write": ".*", "read": ".*"}],
    })


def clean_reference(reference_url: str) -> None:
    for path in (f"vhosts/{VHOST}", f"users/{USER}", f"users/{PUBLISHER}"):
        try:
            management(reference_url, "DELETE", path)
        except urllib.error.HTTPError:
            pass


def setup_leveret(broker: InProcessBroker) -> None:
    broker.admin("add_vhost", VHOST)
    broker.admin("add_user", USER, PASSWORD)
    broker.admin("add_user", PUBLISHER, PASSWORD)
    broker.admin("set_permissions", USER, VHOST, *PERMISSIONS)
    broker.admin("set_permissions", PUBLISHER, VHOST, "", "^amq\\.default$", "")
    broker.admin("set_permissions", "guest", VHOST, ".*", ".*", ".*")


def url_of(base: str, user: str, password: str, vhost: str = VHOST) -> str:
    parsed = urlparse(base)
    return f"amqp://{quote(user)}:{quote(password)}@{parsed.hostname}:{parsed.port}/{quote(vhost, safe='')}"


def declare_topology(base: str) -> None:
    """The queues and exchanges the user's operations act on, declared by guest."""
    with pika.BlockingConnection(pika.URLParameters(url_of(base, "guest", "guest"))) as conn:
        ch = conn.channel()
        for queue in QUEUES:
            ch.queue_declare(queue)
        for exchange in EXCHANGES:
            ch.exchange_declare(exchange, "fanout")


def publish(exchange: str, routing_key: str = "k", properties: pika.BasicProperties | None = None):
    def run(ch):
        ch.confirm_delivery()
        ch.basic_publish(exchange, routing_key, b"m", properties)
    return run


#: label -> operation on a pika channel of USER in VHOST
OPERATIONS = {
    "queue.declare configure ok": lambda ch: ch.queue_declare("c-new", auto_delete=True),
    "queue.declare no configure": lambda ch: ch.queue_declare("x-new"),
    "queue.declare server-named": lambda ch: ch.queue_declare("", exclusive=True),
    "queue.declare amq. prefix": lambda ch: ch.queue_declare("amq.c-q"),
    "queue.declare passive, no permission": lambda ch: ch.queue_declare("x-q", passive=True),
    "queue.declare passive missing": lambda ch: ch.queue_declare("x-none", passive=True),
    "queue.declare dlx, no read on queue": lambda ch: ch.queue_declare(
        "c-dl", arguments={"x-dead-letter-exchange": "w-x"}),
    "queue.declare dlx ok": lambda ch: ch.queue_declare(
        "cr-dl", auto_delete=True, arguments={"x-dead-letter-exchange": "w-x"}),
    "queue.declare dlx, no write on dlx": lambda ch: ch.queue_declare(
        "cr-dl2", arguments={"x-dead-letter-exchange": "x-x"}),
    "queue.declare existing, no configure": lambda ch: ch.queue_declare("x-q"),
    "exchange.declare configure ok": lambda ch: ch.exchange_declare("c-ex", "direct", auto_delete=True),
    "exchange.declare no configure": lambda ch: ch.exchange_declare("x-ex", "direct"),
    "exchange.declare amq. prefix": lambda ch: ch.exchange_declare("amq.c-ex", "direct"),
    "exchange.declare passive, no permission": lambda ch: ch.exchange_declare("x-x", passive=True),
    "exchange.declare ae, no read on exchange": lambda ch: ch.exchange_declare(
        "c-ae", "direct", arguments={"alternate-exchange": "w-x"}),
    "exchange.declare ae ok": lambda ch: ch.exchange_declare(
        "cr-ae", "direct", auto_delete=True, arguments={"alternate-exchange": "w-x"}),
    "exchange.declare ae, no write on ae": lambda ch: ch.exchange_declare(
        "cr-ae2", "direct", arguments={"alternate-exchange": "x-x"}),
    "queue.delete configure ok": lambda ch: ch.queue_delete("c-del"),
    "queue.delete no configure": lambda ch: ch.queue_delete("x-del"),
    "queue.delete missing, no configure": lambda ch: ch.queue_delete("x-none"),
    "exchange.delete configure ok": lambda ch: ch.exchange_delete("c-xdel"),
    "exchange.delete no configure": lambda ch: ch.exchange_delete("x-xdel"),
    "queue.bind ok": lambda ch: ch.queue_bind("w-q", "r-x"),
    "queue.bind no write on queue": lambda ch: ch.queue_bind("x-q", "r-x"),
    "queue.bind no read on exchange": lambda ch: ch.queue_bind("w-q", "x-x"),
    "queue.bind default exchange": lambda ch: ch.queue_bind("w-q", ""),
    "queue.unbind ok": lambda ch: ch.queue_unbind("w-q", "r-x"),
    "queue.unbind no read on exchange": lambda ch: ch.queue_unbind("w-q", "x-x"),
    "exchange.bind ok": lambda ch: ch.exchange_bind("w-x", "r-x"),
    "exchange.bind no write on destination": lambda ch: ch.exchange_bind("x-x", "r-x"),
    "exchange.unbind no read on source": lambda ch: ch.exchange_unbind("w-x", "x-x"),
    "basic.publish default exchange": publish("", "w-q"),
    "basic.publish write ok": publish("w-x"),
    "basic.publish no write": publish("x-x"),
    "basic.publish missing, write ok": publish("w-none"),
    "basic.publish missing, no write": publish("x-none"),
    "basic.publish user-id of another user": publish("w-x", properties=pika.BasicProperties(user_id="guest")),
    "basic.publish user-id of this user": publish("w-x", properties=pika.BasicProperties(user_id=USER)),
    "basic.consume read ok": lambda ch: ch.basic_consume("r-q", lambda *a: None),
    "basic.consume no read": lambda ch: ch.basic_consume("x-q", lambda *a: None),
    "basic.get read ok": lambda ch: ch.basic_get("r-q"),
    "basic.get no read": lambda ch: ch.basic_get("x-q"),
    "basic.get missing, no read": lambda ch: ch.basic_get("x-none"),
    "queue.purge read ok": lambda ch: ch.queue_purge("r-q"),
    "queue.purge no read": lambda ch: ch.queue_purge("x-q"),
}


def observe(url: str, operation) -> object:
    """"ok", or the (reply code, reply text) that closed the channel or connection."""
    try:
        with pika.BlockingConnection(pika.URLParameters(url)) as conn:
            operation(conn.channel())
            return "ok"
    except ChannelClosedByBroker as exc:
        return exc.reply_code, SERVER_NAMED.sub("amq.gen-*", exc.reply_text)
    except (AMQPChannelError, AMQPConnectionError) as exc:
        return _connection_refusal(exc)


def _connection_refusal(exc: Exception) -> tuple:
    """(code, text) of a refused connection, from pika's wrapped exceptions."""
    while exc.args and isinstance(exc.args[0], Exception):
        exc = exc.args[0]
    reply_code = getattr(exc, "reply_code", None)
    if reply_code is not None:
        return reply_code, exc.reply_text
    text = str(exc)
    for code in (403, 530):
        if f"({code})" in text:
            return code, text.split(f"({code}) ", 1)[1].strip("'\"")
    return type(exc).__name__, text


def run_everything(base: str) -> dict:
    declare_topology(base)
    user_url = url_of(base, USER, PASSWORD)
    observed = {label: observe(user_url, operation) for label, operation in OPERATIONS.items()}
    observed["publisher: default exchange"] = observe(url_of(base, PUBLISHER, PASSWORD), publish("", "w-q"))
    observed["publisher: amq.direct"] = observe(url_of(base, PUBLISHER, PASSWORD), publish("amq.direct"))
    observed["login: wrong password"] = observe(url_of(base, USER, "wrong"), lambda ch: None)
    observed["login: unknown user"] = observe(url_of(base, "h3_nobody", PASSWORD), lambda ch: None)
    observed["open: vhost without permission"] = observe(url_of(base, USER, PASSWORD, "/"), lambda ch: None)
    observed["open: missing vhost"] = observe(url_of(base, USER, PASSWORD, "h3_none"), lambda ch: None)
    return observed


def test_permissions_like_rabbitmq(reference_api, tmp_path):
    reference_url = reference_api
    clean_reference(reference_url)
    setup_reference(reference_url)
    try:
        reference = run_everything(reference_url)
    finally:
        clean_reference(reference_url)
    # the scenario is meaningful: both outcomes occur, with RabbitMQ's texts
    assert reference["queue.declare configure ok"] == "ok"
    assert reference["queue.declare no configure"] == (
        403, f"ACCESS_REFUSED - access to queue 'x-new' in vhost '{VHOST}' refused for user '{USER}'")
    assert reference["basic.publish user-id of another user"][0] == 406
    with InProcessBroker(tmp_path / "data") as broker:
        setup_leveret(broker)
        observed = run_everything(broker.url())
    different = {label: (observed[label], expected) for label, expected in reference.items()
                 if observed[label] != expected}
    assert not different, "Leveret (left) differs from RabbitMQ 3.10 (right):\n" + "\n".join(
        f"  {label}: {ours!r} != {theirs!r}" for label, (ours, theirs) in different.items())


def test_password_hash_of_rabbitmq_verifies(reference_api):
    reference_url = reference_api
    """A hash RabbitMQ made checks with Leveret's code, and Leveret's hash
    has RabbitMQ's layout: base64(4-byte salt + sha256(salt + password))."""
    management(reference_url, "PUT", "users/h3_hash", {"password": "s3cret", "tags": ""})
    try:
        exported = management(reference_url, "GET", "users/h3_hash")
    finally:
        management(reference_url, "DELETE", "users/h3_hash")
    assert exported["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert check_password(exported["password_hash"], exported["hashing_algorithm"], "s3cret")
    assert not check_password(exported["password_hash"], exported["hashing_algorithm"], "s3cret ")
    raw = base64.b64decode(hash_password("s3cret", salt=b"\x01\x02\x03\x04"))
    assert raw == b"\x01\x02\x03\x04" + hashlib.sha256(b"\x01\x02\x03\x04s3cret").digest()
