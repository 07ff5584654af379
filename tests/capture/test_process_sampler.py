"""The process sampler on real processes: trees, the first CPU reading, USS on demand, deaths, permission."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.capture.process_sampler import SAMPLE_COLUMNS, ProcessSampler, process_tree_pids

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(SLEEPER)
    yield process
    process.kill()
    process.wait(timeout=10)


def test_samples_a_process_with_its_children(sleeper: subprocess.Popen[bytes]) -> None:
    sampler = ProcessSampler([("me", os.getpid())])
    first = sampler.sample(time.time())[0]
    assert first.cpu_percent is None, "psutil's first cpu_percent measures nothing: it must be dropped"
    assert first.processes >= 2
    assert first.children == first.processes - 1
    assert first.rss_bytes is not None
    assert first.rss_bytes > 10_000_000
    assert first.num_fds is not None
    assert first.num_fds > 0
    assert first.num_threads is not None
    assert first.num_threads >= 2
    assert first.uss_bytes is None
    sum(range(2_000_000))  # some CPU between ticks
    second = sampler.sample(time.time(), with_uss=True)[0]
    assert second.cpu_percent is not None
    assert second.cpu_percent > 0
    assert second.uss_bytes is not None
    assert 0 < second.uss_bytes <= (second.rss_bytes or 0)
    # the traced_* and asyncio_tasks columns come from the probe, not from psutil
    assert set(second.row(1.0)) == set(SAMPLE_COLUMNS) - {"traced_bytes", "traced_peak_bytes", "asyncio_tasks"}
    assert sampler.take_died() == []
    assert sampler.take_warnings() == []


def test_a_vanished_pid_is_reported_once_with_when_it_was_last_seen(sleeper: subprocess.Popen[bytes]) -> None:
    sampler = ProcessSampler([("sleeper", sleeper.pid), ("me", os.getpid())])
    assert [s.target for s in sampler.sample(100.0)] == ["sleeper", "me"]
    sleeper.kill()
    sleeper.wait(timeout=10)
    assert [s.target for s in sampler.sample(101.0)] == ["me"]
    (died,) = sampler.take_died()
    assert (died.target, died.pid, died.last_seen) == ("sleeper", sleeper.pid, 100.0)
    assert f"pid {sleeper.pid} vanished; last seen alive at t=100.000" == died.detail
    assert [s.target for s in sampler.sample(102.0)] == ["me"]
    assert sampler.take_died() == [], "a death is reported once"
    assert not sampler.alive("sleeper")
    assert sampler.alive("me")


def test_an_unreaped_zombie_counts_as_gone(sleeper: subprocess.Popen[bytes]) -> None:
    sampler = ProcessSampler([("sleeper", sleeper.pid)])
    sampler.sample(1.0)
    sleeper.kill()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{sleeper.pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the killed child never became a zombie"
        time.sleep(0.01)
    assert sampler.sample(2.0) == []
    assert [died.target for died in sampler.take_died()] == ["sleeper"]


def test_a_pid_that_never_existed_is_reported() -> None:
    ghost = subprocess.Popen(SLEEPER)
    ghost.kill()
    ghost.wait(timeout=10)
    sampler = ProcessSampler([("ghost", ghost.pid)])
    assert sampler.sample(1.0) == []
    (died,) = sampler.take_died()
    assert died.last_seen is None
    assert "did not exist when sampling started" in died.detail


_UNPRIVILEGED = textwrap.dedent(
    """
    import json, os, sys
    from harness.capture.process_sampler import ProcessSampler
    os.setgid(65534)
    os.setuid(65534)
    sampler = ProcessSampler([("root-target", int(sys.argv[1]))])
    sampler.sample(1.0)
    sample = sampler.sample(2.0)[0]
    sampler.sample(3.0)
    print(json.dumps({"row": sample.row(2.0), "warnings": sampler.take_warnings()}))
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_a_denied_reading_is_blank_with_one_warning_naming_it(sleeper: subprocess.Popen[bytes]) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _UNPRIVILEGED, str(sleeper.pid)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["row"]["num_fds"] is None, "another user's descriptors cannot be counted"
    assert result["row"]["rss_bytes"] > 0, "the readings that are allowed are still taken"
    warnings = result["warnings"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"num_fds of target 'root-target' (pid {sleeper.pid}) is missing: permission denied")


def test_process_tree_includes_children_and_a_missing_pid_raises() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in process_tree_pids(os.getpid())
        assert process_tree_pids(os.getpid())[0] == os.getpid()
    finally:
        child.kill()
        child.wait(timeout=10)
    with pytest.raises(ProcessLookupError, match=str(child.pid)):
        process_tree_pids(child.pid)
