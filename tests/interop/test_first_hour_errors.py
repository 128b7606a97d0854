"""Start-up and command-line mistakes a new user makes, each answered with
one line that names the path or the value and the cause, and a documented
exit status (README, "Exit statuses"): a data directory that is a file,
read-only, unreadable, impossible to create or holding a damaged topology
file (5); a bad environment value
worded as the same flag mistake (2); a closed output pipe (quiet, 0)."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys

import pytest

from tests.interop.server_process import REPO_ROOT, free_port

#: the log line prefix: ``2026-11-22 10:00:00,123 ERROR broker.app.server: ``
LOG_ERROR = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR broker\.app\.server: ")

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _as_plain_user() -> None:
    """preexec_fn: a root test process starts the broker without the
    capabilities that let root ignore file modes, so that the modes the
    test sets apply to it as to any user (no-op for a non-root user)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
            if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def start_broker(data_dir, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the broker on ``data_dir`` expecting it to stop by itself."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LEVERET_")}
    environ.update(env or {})
    try:
        return subprocess.run(
            [sys.executable, "-m", "broker", "--port", str(free_port()), "--data-dir", str(data_dir),
             "--log-level", "info", *extra],
            capture_output=True, text=True, cwd=REPO_ROOT, env=environ, timeout=60,
            preexec_fn=_as_plain_user)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop root's file capabilities here: {exc}")


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The message of the single line the broker wrote (after the log
    prefix); fails on a traceback or more lines."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert LOG_ERROR.match(lines[0]), lines[0]
    return LOG_ERROR.sub("", lines[0])


@pytest.fixture
def restore_modes():
    """Paths whose mode a test changes get 0o755 back at the end."""
    changed = []
    yield changed
    for path in changed:
        os.chmod(path, 0o755)


def test_data_directory_that_is_a_file(tmp_path):
    path = tmp_path / "data"
    path.write_text("not a directory")
    result = start_broker(path)
    assert result.returncode == 5
    assert one_error_line(result) == f"data directory {path} is not a directory (it is a file)"


def test_data_directory_under_an_unwritable_parent(tmp_path, restore_modes):
    parent = tmp_path / "locked"
    parent.mkdir()
    os.chmod(parent, 0o555)
    restore_modes.append(parent)
    result = start_broker(parent / "data")
    assert result.returncode == 5
    assert one_error_line(result) == f"data directory {parent / 'data'} cannot be created: Permission denied"


def test_read_only_data_directory(tmp_path, restore_modes):
    path = tmp_path / "data"
    path.mkdir()
    os.chmod(path, 0o555)
    restore_modes.append(path)
    result = start_broker(path)
    assert result.returncode == 5
    assert one_error_line(result) == f"data directory {path}: {path} is not writable: Permission denied"


def test_data_directory_with_a_file_the_broker_cannot_read(tmp_path, restore_modes):
    path = tmp_path / "data"
    path.mkdir()
    (path / "topology.db").write_bytes(b"")
    os.chmod(path / "topology.db", 0o200)   # write-only: what "unable to open database file" was
    restore_modes.append(path / "topology.db")
    result = start_broker(path)
    assert result.returncode == 5
    assert one_error_line(result) == (f"data directory {path}: cannot open {path / 'topology.db'} "
                                      f"for reading and writing: Permission denied")


def test_topology_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    (path / "topology.db").write_bytes(b"\x00garbage, not SQLite" * 100)
    result = start_broker(path)
    assert result.returncode == 5
    assert one_error_line(result) == (f"data directory {path}: {path / 'topology.db'} is not an SQLite "
                                      f"database (damaged, or not a file of Leveret's)")


def test_bad_environment_value_is_worded_as_the_flag(tmp_path):
    from_env = start_broker(tmp_path / "data", env={"LEVERET_PORT": "notaport"})
    assert from_env.returncode == 2
    assert from_env.stderr.splitlines()[-1] == \
        "leveret: error: environment variable LEVERET_PORT: not an integer: 'notaport'"
    from_flag = subprocess.run([sys.executable, "-m", "broker", "--port", "notaport"], capture_output=True,
                               text=True, cwd=REPO_ROOT, timeout=60)
    assert from_flag.returncode == 2
    assert from_flag.stderr.splitlines()[-1] == "leveret: error: argument --port: not an integer: 'notaport'"
    rebuild = subprocess.run([sys.executable, "-m", "broker", "db", "rebuild", "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
                             env=dict(os.environ, LEVERET_MIRROR_BODY_LIMIT="lots"))
    assert rebuild.returncode == 2
    assert rebuild.stderr.splitlines()[-1] == \
        "leveret: error: environment variable LEVERET_MIRROR_BODY_LIMIT: not an integer: 'lots'"


@pytest.mark.parametrize("command", [["messages", "find"], ["messages", "find", "--json"],
                                     ["messages", "show", "1"], ["queues", "list"]])
def test_closed_pipe_ends_the_output_quietly(tmp_path, command):
    """``leveret messages find | head -1``: the reader is gone before the
    command writes (its read end is closed before the command starts)."""
    from tests.storage.test_mirror_scenario import build_database
    import asyncio

    asyncio.run(build_database(tmp_path))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "broker", *command, "--data-dir", str(tmp_path)],
                                stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                                timeout=60)
    finally:
        os.close(write_end)
    if command[0] == "queues":  # no broker runs there: the error goes to stderr, not to the pipe
        assert (result.returncode, result.stderr) == (1, f"leveret: no broker running on data directory "
                                                         f"{tmp_path}\n")
    else:
        assert (result.returncode, result.stderr) == (0, "")
