"""The Python package: ``python -m build`` makes an sdist and, from it, a
wheel; the wheel holds the three source packages and the ``leveret``
script; installed into a fresh virtualenv outside the repository (no
PYTHONPATH, another working directory) it prints its version and serves a
publish/consume round trip.

The build runs as a user's would, in pip's isolated build environment, so it
needs the package index (as ``make install`` does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pika
import pytest

from broker import __version__
from tests.interop.server_process import free_port, stop_process, wait_listening

pytestmark = pytest.mark.timeout(600)

REPO_ROOT = Path(__file__).resolve().parents[2]
#: not copied into the build's source tree: local state and build leftovers
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "data", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", "results")
PACKAGES = {"broker", "protocol", "storage"}


def clean_env() -> dict[str, str]:
    """This environment without what would let Python find the repository
    or this test's virtualenv."""
    return {key: value for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def run(*command: str | Path, cwd: Path, timeout: float = 300) -> str:
    """Run ``command`` in ``cwd`` with ``clean_env()``; returns its stdout.
    Fails the test with the output when it exits non-zero."""
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=clean_env(), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout[-3000:]}" \
                                   f"{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The directory with the sdist and the wheel built from a copy of the
    repository (the build writes an egg-info into its source tree)."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_SOURCES)
    run(sys.executable, "-m", "build", "--outdir", work / "dist", source, cwd=work)
    return work / "dist"


def only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_sdist_holds_what_builds_the_wheel(dist):
    sdist = only(dist, f"leveret-{__version__}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = {name.split("/")[1] for name in names if name.count("/") >= 1 and name.split("/")[1]}
    assert top == PACKAGES | {"pyproject.toml", "README.md", "MANIFEST.in", "PKG-INFO", "setup.cfg",
                              "leveret.egg-info"}


def test_wheel_holds_the_packages_script_and_version(dist):
    wheel = only(dist, f"leveret-{__version__}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"leveret-{__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert {name.split("/")[0] for name in names} == PACKAGES | {info}
    assert "broker/app/cli.py" in names and "storage/wal/__init__.py" in names
    assert f"\nVersion: {__version__}\n" in metadata
    for requirement in ("pamqp", "uvloop", "aiosqlite"):
        assert f"\nRequires-Dist: {requirement}" in metadata
    assert "leveret = broker.app.cli:main" in entry_points


def test_installed_wheel_serves_outside_the_repository(dist, tmp_path):
    wheel = only(dist, "*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel,
        cwd=tmp_path)
    assert run(venv / "bin" / "leveret", "--version", cwd=tmp_path).strip() == f"leveret {__version__}"
    where = run(venv / "bin" / "python", "-c", "import broker; print(broker.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv), where

    port = free_port()
    log = open(tmp_path / "broker.log", "wb")
    proc = subprocess.Popen([venv / "bin" / "leveret", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", tmp_path / "data"], cwd=tmp_path, env=clean_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    try:
        assert wait_listening(proc, "127.0.0.1", port, 30), (tmp_path / "broker.log").read_text()
        params = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/%2F")
        with pika.BlockingConnection(params) as conn:
            channel = conn.channel()
            channel.queue_declare("wheel-check", durable=True)
            channel.confirm_delivery()
            channel.basic_publish("", "wheel-check", b"from the wheel", pika.BasicProperties(delivery_mode=2),
                                  mandatory=True)
            received = next(channel.consume("wheel-check", inactivity_timeout=10))
            assert received[2] == b"from the wheel"
            channel.basic_ack(received[0].delivery_tag)
            channel.cancel()
    finally:
        status = stop_process(proc, 20)
    assert status == 0, (tmp_path / "broker.log").read_text()[-3000:]  # SIGTERM: a clean shutdown
