"""The image itself: it runs the broker as the unprivileged user leveret,
its HEALTHCHECK passes, ``leveret --version`` works in it, and the build left
no source tree, pip or caches behind (docs/docker.md, "The image")."""

from __future__ import annotations

import json

import pytest

from broker import __version__
from tests.container import engine

pytestmark = pytest.mark.timeout(300)  # the first test may wait for the image build

#: what the image may add on top of its base: the virtualenv (Leveret and its
#: dependencies, about 17 MB) and the user. The source tree or a pip cache
#: left in a layer would pass it.
MAX_ADDED_BYTES = 40 * 1024 * 1024


def proc_status(box: engine.Container, pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` inside the container, as name -> value."""
    text = box.exec("cat", f"/proc/{pid}/status").stdout
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def test_broker_is_pid_1_as_non_root_and_healthy(container):
    box = container()
    box.wait_healthy()
    assert box.health_status() == "healthy"
    status = proc_status(box, 1)
    assert status["Name"].strip() == "leveret"
    real, effective, _saved, _fs = status["Uid"].split()
    assert real == effective == "10001"
    assert box.inspect("{{.Config.User}}") == "10001:10001"
    assert "listening on 0.0.0.0:5672" in box.logs()


def test_version_and_no_build_leftovers(image):
    script = (
        "import glob, json, os, shutil, site; "
        "print(json.dumps({'src': os.path.exists('/tmp/leveret-src'), "
        "'pip': sorted(glob.glob(site.getsitepackages()[0] + '/pip*') "
        "+ glob.glob(site.getsitepackages()[0] + '/setuptools*')), "
        "'compilers': [c for c in ('gcc', 'cc', 'make') if shutil.which(c)], "
        "'caches': [p for p in ('/root/.cache', '/var/lib/leveret/.cache', '/tmp/pip') if os.path.exists(p)], "
        "'data': os.listdir('/var/lib/leveret')}))"
    )
    found = json.loads(engine.podman("run", "--rm", image, "python", "-c", script).stdout)
    assert found == {"src": False, "pip": [], "compilers": [], "caches": [], "data": []}
    version = engine.podman("run", "--rm", image, "leveret", "--version").stdout.strip()
    assert version == f"leveret {__version__}"


def image_field(image: str, template: str) -> str:
    return engine.podman("image", "inspect", "--format", template, image).stdout.strip()


def test_image_adds_little_to_its_base(image):
    base = engine.base_image()
    if base is None:
        pytest.skip("no container-engine base image to compare with")
    layers = json.loads(image_field(image, "{{json .RootFS.Layers}}"))
    base_layers = json.loads(image_field(base, "{{json .RootFS.Layers}}"))
    assert layers[:len(base_layers)] == base_layers, f"{image} is not built on {base}"
    added = int(image_field(image, "{{.Size}}")) - int(image_field(base, "{{.Size}}"))
    assert 0 < added < MAX_ADDED_BYTES, f"the image adds {added} bytes to {base}"
