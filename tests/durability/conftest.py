"""Fixtures for the durability tests: ``unique`` is the interop suite's."""

from __future__ import annotations

from tests.interop.conftest import unique  # noqa: F401  (fixture)
