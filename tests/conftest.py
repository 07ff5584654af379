"""Pytest fixtures shared by every test package; the helpers they are built on are in tests/support.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The bundled stack with its default flags, shared by a test module (tests must not assume it is idle)."""
    yield from start_stack(tmp_path_factory.mktemp("stack"))
