"""ProbeClient and ProbeLaunch against a real probe process: traced memory, snapshots, and errors naming the target."""

from __future__ import annotations

import socket
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.capture.probe_client import ProbeClient, ProbeLaunch
from harness.errors import TargetError
from harness.launch.process import ChildProcess, LaunchSpec
from tests.support import probed_program, wait_until


@pytest.fixture
def probed(tmp_path: Path) -> Iterator[tuple[ProbeClient, Path, ChildProcess]]:
    with probed_program(tmp_path) as probe:
        yield probe


def test_launch_wraps_the_command_in_the_probe_and_passes_token_and_port_file(tmp_path: Path) -> None:
    launch = ProbeLaunch.new(tmp_path / "x.port", nframe=5)
    assert launch.argv(["-m", "targets.eager"]) == [
        sys.executable,
        "-m",
        "harness.capture.probe",
        "--nframe",
        "5",
        "--",
        "-m",
        "targets.eager",
    ]
    assert len(launch.token) >= 16
    assert ProbeLaunch.new(tmp_path / "x.port").token != launch.token
    again = ProbeLaunch.from_env(launch.env())
    assert again is not None
    assert (again.token, again.port_file, again.nframe) == (launch.token, launch.port_file, 5)
    assert ProbeLaunch.from_env({}) is None


def test_traced_follows_what_the_program_holds(probed: tuple[ProbeClient, Path, ChildProcess]) -> None:
    client, grow, _ = probed
    current, peak = client.traced()
    assert peak >= current > 0
    grow.write_text("")
    assert wait_until(lambda: not grow.exists(), 10)
    after = client.traced()
    assert after.current_bytes - current >= 1_000_000
    assert after.peak_bytes >= after.current_bytes


def test_snapshot_writes_where_asked_and_reports_the_stall(
    probed: tuple[ProbeClient, Path, ChildProcess], tmp_path: Path
) -> None:
    client, _, _ = probed
    taken = client.snapshot(tmp_path / "snap.tracemalloc", tmp_path / "snap.census.json")
    assert taken.census_path == (tmp_path / "snap.census.json").resolve()
    assert taken.census_path.exists()
    assert len(tracemalloc.Snapshot.load(str(taken.snapshot_path)).traces) == taken.traces > 0
    assert taken.took_s >= taken.snapshot_s > 0
    without_census = client.snapshot(tmp_path / "bare.tracemalloc")
    assert without_census.census_path is None


def test_a_wrong_token_is_an_error_naming_the_target(probed: tuple[ProbeClient, Path, ChildProcess]) -> None:
    client, _, _ = probed
    intruder = ProbeClient(client.port, "not-the-token", target="grower")
    with pytest.raises(TargetError, match=r"probe of target 'grower' .* with 403"):
        intruder.traced()


def test_a_probe_that_does_not_answer_is_an_error_naming_the_target() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        client = ProbeClient(port, "token", target="eager", timeout_s=0.5)
        with pytest.raises(TargetError, match=rf"probe of target 'eager' at http://127.0.0.1:{port} did not answer"):
            client.traced()


def test_no_port_file_is_an_error_naming_the_target_and_file(tmp_path: Path) -> None:
    launch = ProbeLaunch.new(tmp_path / "never.port")
    with pytest.raises(TargetError, match=r"probe of target 'lazy' wrote no port to .*never.port.* within 0.2 s"):
        ProbeClient.connect(launch, target="lazy", wait_s=0.2)


def test_a_child_not_under_the_probe_is_refused(tmp_path: Path) -> None:
    child = ChildProcess(
        LaunchSpec("plain", [sys.executable, "-c", "print('plain listening on http://127.0.0.1:1')"], ready_path=None),
        tmp_path / "plain.log",
    )
    try:
        with pytest.raises(TargetError, match="target 'plain' does not run under the probe"):
            ProbeClient.for_child(child)
    finally:
        child.stop(grace_s=1)


def test_a_probe_that_only_counts_traces_nothing_and_refuses_snapshots(tmp_path: Path) -> None:
    with probed_program(tmp_path, nframe=0) as (client, _, child):
        assert not client.tracing
        reading = client.reading()
        assert (reading.current_bytes, reading.peak_bytes) == (None, None)
        assert reading.asyncio_tasks is None  # the program never imported asyncio
        with pytest.raises(TargetError, match="traces nothing"):
            client.traced()
        with pytest.raises(TargetError, match="answered POST /snapshot with 409: .*tracemalloc is off"):
            client.snapshot(tmp_path / "snap.tracemalloc")
        assert child.poll() is None
