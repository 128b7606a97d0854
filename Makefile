# Leveret: developer commands. Everything runs from the project's own
# virtualenv in .venv, created on first use.
#
#   make run      install (when needed) and start the broker on 127.0.0.1 and ::1, port 5672, data in ./data
#   make test     install (when needed), check the layer rule (lint-imports) and run the whole test suite
#   make install  create .venv and pip install -e '.[test]' (again only when pyproject.toml changed)
#   make bench    run the benchmark suite against Leveret and RabbitMQ (bench/run.py; BENCH_ARGS=--smoke for 10 s)
#   make lint     hadolint on docker/Dockerfile
#   make image    build the container image leveret:latest (podman, else docker; BASE=image for another base)
#   make dist     build the sdist and the wheel into dist/ (python -m build)
#   make clean    remove caches and build leftovers (keeps .venv and ./data)
#   make distclean  clean, and remove .venv too (./data is never removed)

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# python3.11 when there is one, else python3
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
# the stamp is newer than pyproject.toml once the install for it succeeded
STAMP := $(VENV)/.installed

# empty: the broker's default, loopback for IPv4 and IPv6 (127.0.0.1 and ::1)
HOST ?=
PORT ?= 5672
DATA_DIR ?= ./data
PYTEST_ARGS ?=
BENCH_ARGS ?=
# make image: the container engine (podman needs no daemon), the image's name, the Dockerfile's BASE
# argument, and extra build options (e.g. --network host)
ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
IMAGE ?= leveret:latest
BASE ?= python:3.11-slim
IMAGE_BUILD_ARGS ?=

.PHONY: help run install test bench lint image dist clean distclean

help:
	@sed -n 's/^#   //p' Makefile

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "need python3.11 or python3 on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/leveret $(if $(HOST),--host $(HOST)) --port $(PORT) --data-dir $(DATA_DIR)

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/pytest -q -rs tests --junitxml=.ci/pytest-report.xml $(PYTEST_ARGS)

bench: $(STAMP)
	@if [ -f bench/run.py ]; then \
		$(BIN)/python bench/run.py $(BENCH_ARGS); \
	else \
		echo "no benchmarks yet: bench/run.py does not exist (planned for issue 5)"; \
	fi

lint: $(STAMP)
	$(BIN)/hadolint docker/Dockerfile

# podman's default (OCI) image format has no HEALTHCHECK: ask for Docker's
image:
	@test -n "$(ENGINE)" || { echo "need docker or podman on PATH" >&2; exit 1; }
	$(ENGINE) build $(if $(findstring podman,$(ENGINE)),--format docker) --build-arg BASE=$(BASE) \
		$(IMAGE_BUILD_ARGS) -f docker/Dockerfile -t $(IMAGE) .

dist: $(STAMP)
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf build dist .pytest_cache *.egg-info $(STAMP)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
