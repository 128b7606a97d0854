"""The README's examples run as written: its Python code blocks (the pika
send/receive pair, aio-pika, the Celery app and its caller, each opening
with a ``# <file>.py`` line) are saved under their names and run against a
real broker, the Celery worker started with the README's own command; the
Node block too where node and amqplib are installed. The one change is the
address: ``localhost:5672`` becomes the test broker's.
Also: the README names nothing outside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop.server_process import REPO_ROOT, stop_process
from tests.interop.test_amqplib import NODE_DIR, node  # noqa: F401  (fixture: skips without node/amqplib)

README = (REPO_ROOT / "README.md").read_text()
#: documents the README links to that other work adds (access control, TLS)
LINKED_ELSEWHERE = {"docs/security.md", "docs/tls.md"}


def code_blocks(language: str) -> list[str]:
    """The README's fenced blocks of ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", README, flags=re.S | re.M)


def python_files() -> dict[str, str]:
    """``{file name: code}`` of the Python blocks that open with ``# name.py``."""
    files = {}
    for block in code_blocks("python"):
        first = block.splitlines()[0]
        match = re.fullmatch(r"# (\w+\.py)", first)
        if match:
            files[match.group(1)] = block
    return files


def for_broker(code: str, port: int) -> str:
    """``code`` pointed at the test broker; fails if it names no address."""
    pointed = (code.replace('host="localhost", port=5672', f'host="127.0.0.1", port={port}')
               .replace("localhost:5672", f"127.0.0.1:{port}"))
    assert pointed != code, f"no localhost:5672 in\n{code}"
    return pointed


@pytest.fixture
def examples(fresh_broker, tmp_path):
    """Write the README's Python files for a fresh broker; returns
    ``run(name) -> CompletedProcess`` and the directory."""
    broker = fresh_broker()
    for name, code in python_files().items():
        text = code if name == "call.py" else for_broker(code, broker.port)
        (tmp_path / name).write_text(text)

    def run(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, name], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)

    return run, tmp_path


def test_the_readme_has_the_examples():
    assert {"send.py", "receive.py", "hello_aio.py", "tasks.py", "call.py"} <= set(python_files())


def test_pika_send_and_receive(examples):
    run, _ = examples
    sent = run("send.py")
    assert (sent.returncode, sent.stdout) == (0, " [x] Sent 'Hello World!'\n"), sent.stderr
    received = run("receive.py")
    assert (received.returncode, received.stdout) == (0, " [x] Received Hello World!\n"), received.stderr


def test_aio_pika(examples):
    run, _ = examples
    result = run("hello_aio.py")
    assert (result.returncode, result.stdout) == (0, "Hello from aio-pika\n"), result.stderr


def test_celery_app_with_the_readmes_worker_command(examples):
    pytest.importorskip("celery")
    run, directory = examples
    command = next(line for block in code_blocks("sh") for line in block.splitlines()
                   if line.startswith("celery -A tasks worker"))
    log = open(directory / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", *command.split()], cwd=directory, stdout=log,
                              stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(directory)))
    log.close()
    try:
        result = run("call.py")
        assert (result.returncode, result.stdout) == (0, "5\n"), result.stderr
    finally:
        assert stop_process(worker, 20) == 0, (directory / "worker.log").read_text()[-3000:]


def test_node(node, fresh_broker, tmp_path):  # noqa: F811  (the fixture imported above)
    (block,) = code_blocks("js")
    broker = fresh_broker()
    (tmp_path / "hello.js").write_text(for_broker(block, broker.port))
    result = subprocess.run([node, "hello.js"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, NODE_PATH=str(NODE_DIR / "node_modules")))
    assert (result.returncode, result.stdout) == (0, "Hello from Node\n"), result.stderr


def test_nothing_outside_the_repository():
    assert not re.search(r"\bissue \d", README, flags=re.I)
    assert "../" not in README and "design.md" not in README
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if target.startswith("http"):
            continue
        assert target in LINKED_ELSEWHERE or (REPO_ROOT / target).exists(), target
