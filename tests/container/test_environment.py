"""Configuration through environment variables, as docs/docker.md documents
it: ``LEVERET_PORT``, ``LEVERET_DEFAULT_USER`` / ``LEVERET_DEFAULT_PASS``,
``LEVERET_LOG_LEVEL`` (broker.app.config.Config.from_env; every LEVERET_*
variable works the same way), and a bad value stops the container with the
command line's usage error."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from tests.container import engine

pytestmark = pytest.mark.timeout(300)  # the first test may wait for the image build

USER = "h5-container-user"
PASSWORD = "s3cret-not-logged"


def test_port_user_password_and_log_level(container):
    box = container(env={"LEVERET_PORT": "5673", "LEVERET_DEFAULT_USER": USER,
                         "LEVERET_DEFAULT_PASS": PASSWORD, "LEVERET_LOG_LEVEL": "debug"},
                    container_port=5673)
    box.wait_healthy()  # the HEALTHCHECK follows LEVERET_PORT
    address = dict(host="127.0.0.1", port=box.host_port, virtual_host="/")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.ConnectionParameters(
            **address, credentials=pika.PlainCredentials("guest", "guest"), connection_attempts=1))
    with pika.BlockingConnection(pika.ConnectionParameters(
            **address, credentials=pika.PlainCredentials(USER, PASSWORD))) as conn:
        channel = conn.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"configured")
        assert channel.basic_get(queue, auto_ack=True)[2] == b"configured"
    log = box.logs()
    assert "listening on 0.0.0.0:5673" in log
    assert " DEBUG " in log
    assert PASSWORD not in log


def test_bad_variable_stops_the_container_with_a_usage_error(image):
    result = engine.podman("run", "--rm", "--env", "LEVERET_LOG_LEVEL=loud", image, check=False, timeout=60)
    assert result.returncode == 2
    assert "invalid environment variable LEVERET_LOG_LEVEL='loud'" in result.stderr
