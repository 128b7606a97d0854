"""Fixtures of the container tests: the image, and containers and volumes
that are removed when the test ends.

The image is ``$LEVERET_IMAGE`` when set (``.ci/run`` builds it first),
else the tests build ``localhost/leveret:test`` from this repository on the
base image of ``../shared/tools/container-engine`` (after ``container-engine
setup``). Without podman or the base image every test here is skipped, with
the reason repeated at the end of the run: a run that could not build the
image must not look like one that tested it.
"""

from __future__ import annotations

import os

import pytest

from tests.container import engine

#: why the container tests were skipped, for the end-of-run summary
SKIPPED_BECAUSE: list[str] = []


def _skip(reason: str) -> None:
    if not SKIPPED_BECAUSE:
        SKIPPED_BECAUSE.append(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def image() -> str:
    """The name of the Leveret image under test (built once per session)."""
    if engine.podman_path() is None:
        _skip("CONTAINER TESTS SKIPPED: podman not found (run `bash ../shared/tools/container-engine "
              "setup`, or .ci/run, which does)")
    named = os.environ.get(engine.IMAGE_VARIABLE)
    if named:
        if not engine.image_exists(named):
            pytest.fail(f"{engine.IMAGE_VARIABLE}={named}: no such image")
        return named
    base = engine.base_image()
    if base is None:
        _skip(f"CONTAINER TESTS SKIPPED: no base image ({engine.ENGINE_TOOL} missing, or `container-engine "
              "setup` not run) and LEVERET_IMAGE not set")
    engine.build_image(engine.TEST_IMAGE, base)
    return engine.TEST_IMAGE


@pytest.fixture
def volume():
    """Factory of named volumes, removed at the end of the test."""
    made: list[str] = []

    def make() -> str:
        name = engine.unique_name("data")
        engine.podman("volume", "create", name)
        made.append(name)
        return name

    yield make
    for name in made:
        engine.remove_volume(name)


@pytest.fixture
def container(image, volume):
    """Factory: ``container(env={...}, volume_name=None, container_port=5672)``
    runs a container of the image (a fresh volume unless one is named) and
    waits for the broker. Every container it made is removed afterwards."""
    made: list[engine.Container] = []

    def run(env: dict[str, str] | None = None, volume_name: str | None = None,
            container_port: int = engine.AMQP_PORT) -> engine.Container:
        box = engine.Container(image, volume_name or volume(), env, container_port)
        made.append(box)
        return box.run()

    yield run
    for box in made:
        box.remove()


def pytest_terminal_summary(terminalreporter):
    for reason in SKIPPED_BECAUSE:
        terminalreporter.write_sep("!", reason, red=True, bold=True)
