"""Pytest fixtures shared by every test package; the helpers they are built on are in tests/support.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import BUNDLED_SCALE, LocustRun, Stack, side_by_side, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The bundled stack with its default flags, shared by a test module (tests must not assume it is idle)."""
    yield from start_stack(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def bundled_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LocustRun]:
    """One real headless run of each bundled scenario (``locust -f locustfiles/X.py --headless --scenario-scale
    0.3 --only-summary``, the bundled stack), all three at once, each exited 0 with no process left behind: made
    once for the tests that read what such a run leaves (tests/plugin/test_locustfiles.py: the scenarios;
    tests/load/test_stream_stats.py: Locust's statistics and the terminal; tests/report/test_pages_in_browser.py:
    the reports), which only read them.

    disconnects also writes Locust's statistics (``--json-file``: ``stats.json`` beside its log); mixed and
    slow_readers run the relays under the probe, the demo's way, slow_readers with its byte-paced readers at
    2 KiB/s. disconnects, whose verdicts are asserted, runs without the probe (measured: three runs at once on 2
    cores, all probed, pushed lazy's tokens after leave to 28%, a cancellation fail; the probe slows the relays
    2.5-4x). Side by side because the runs mostly wait on their phases' clock."""
    root = tmp_path_factory.mktemp("bundled")
    base = ("--headless", "--scenario-scale", BUNDLED_SCALE, "--only-summary")
    return side_by_side(
        root,
        {
            "disconnects": (
                "-f",
                "locustfiles/disconnects.py",
                *base,
                "--json-file",
                str(root / "disconnects" / "stats"),
            ),
            "mixed": ("-f", "locustfiles/mixed.py", *base, "--profile-nframe", "1"),
            "slow_readers": (
                "-f",
                "locustfiles/slow_readers.py",
                *base,
                "--profile-nframe",
                "1",
                "--read-pace",
                "2KiB/s",
            ),
        },
    )
