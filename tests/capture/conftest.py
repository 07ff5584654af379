"""Fixtures of the capture tests: a run folder to write, real loopback sockets (tests.support.Loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.runfolder import RunFolder
from tests.support import Loopback


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    made = Loopback()
    yield made
    made.close()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[RunFolder]:
    """A fresh run folder under tmp_path/reports, finished (its files closed) after the test."""
    created = RunFolder.create(tmp_path / "reports", "capture-test")
    yield created
    created.finish()
