"""Fixtures of the capture tests: real loopback sockets (tests.support.Loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Loopback


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    made = Loopback()
    yield made
    made.close()
