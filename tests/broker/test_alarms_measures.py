"""Unit tests of broker/app/alarms.py's thresholds and measures and of the
command-line size parsers (broker/app/cli.py) on real files and the real
process: cgroup limit files, the watermark as fraction or bytes, the disk
limit floor of two WAL segments."""

from __future__ import annotations

import argparse

import pytest

from broker.app import alarms
from broker.app.cli import build_config
from broker.app.resource_options import byte_size, watermark


def test_cgroup_limit_files(tmp_path):
    v2, v1 = tmp_path / "memory.max", tmp_path / "limit_in_bytes"
    v2.write_text("max\n")
    assert alarms.cgroup_memory_limit((str(v2), str(v1))) is None
    v2.write_text("536870912\n")
    assert alarms.cgroup_memory_limit((str(v2), str(v1))) == 512 << 20
    v1.write_text("9223372036854771712\n")  # cgroup v1's "no limit"
    assert alarms.cgroup_memory_limit((str(tmp_path / "absent"), str(v1))) is None
    assert alarms.cgroup_memory_limit((str(tmp_path / "absent"),)) is None


def test_thresholds():
    assert alarms.memory_limit(0.4, 1000) == 400
    assert alarms.memory_limit(1.0, 1000) == 1000
    assert alarms.memory_limit(4096.0, 1000) == 4096
    assert alarms.disk_limit(50_000_000, 64 << 20) == 128 << 20
    assert alarms.disk_limit(1 << 30, 64 << 20) == 1 << 30
    assert 0 < alarms.available_memory() <= alarms.physical_memory()


def test_measures_of_this_process(tmp_path):
    used = alarms.resident_memory()
    assert 1 << 20 < used < alarms.physical_memory()
    assert alarms.free_disk(tmp_path) > 0


@pytest.mark.parametrize("text, value", [("50000000", 50_000_000), ("50MB", 50_000_000), ("512MiB", 512 << 20),
                                         ("2G", 2 << 30), ("1 GB", 10**9), ("0", 0), ("64kB", 64_000)])
def test_byte_sizes(text, value):
    assert byte_size(text) == value


@pytest.mark.parametrize("text", ["", "MB", "-1", "1.5GB", "12XB", "ten"])
def test_bad_byte_sizes(text):
    with pytest.raises(argparse.ArgumentTypeError):
        byte_size(text)


@pytest.mark.parametrize("text, value", [("0.4", 0.4), ("1", 1.0), ("0", 0.0), ("1073741824", float(1 << 30)),
                                         ("1GiB", float(1 << 30)), ("256MB", 256e6)])
def test_watermarks(text, value):
    assert watermark(text) == value


@pytest.mark.parametrize("text", ["-0.1", "1.5", "nan", "lots"])
def test_bad_watermarks(text):
    with pytest.raises(argparse.ArgumentTypeError):
        watermark(text)


def test_flags_and_environment():
    config = build_config(["--memory-high-watermark", "0.25", "--disk-free-limit", "1GB"],
                          {"LEVERET_MAX_CONNECTIONS": "100"})
    assert (config.memory_high_watermark, config.disk_free_limit, config.max_connections) == (0.25, 10**9, 100)
    with pytest.raises(SystemExit):
        build_config([], {"LEVERET_DISK_FREE_LIMIT": "much"})
