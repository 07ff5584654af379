"""The Sampler against the real bundled stack: one clock, agreement with the targets' own counters, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.runfolder import RunFolder
from harness.sampling import SampledTarget, Sampler
from harness.stream_client import StreamConnection, split_url
from tests.conftest import Stack

RELAYS = ("eager", "lazy", "bounded")
STREAMS_PER_RELAY = 10


def _targets(stack: Stack) -> list[SampledTarget]:
    upstream_port = split_url(stack.url["upstream"])[1]
    targets = [SampledTarget("upstream", "upstream", stack.url["upstream"], stack.children["upstream"].pid, None)]
    targets += [
        SampledTarget(name, "relay", stack.url[name], stack.children[name].pid, upstream_port) for name in RELAYS
    ]
    return targets


def _wait_idle(stack: Stack, timeout_s: float = 20.0) -> None:
    """Earlier tests' streams may still run in the shared stack: wait until none is open."""
    deadline = time.monotonic() + timeout_s
    while stack.stats("upstream")["open_streams"] or any(stack.stats(n)["open_upstream_streams"] for n in RELAYS):
        if time.monotonic() > deadline:
            pytest.fail(f"the stack still had open streams after {timeout_s} s")
        time.sleep(0.1)


def _open_streams(stack: Stack, name: str, count: int, path: str) -> list[StreamConnection]:
    host, port, _ = split_url(stack.url[name])
    streams = []
    for index in range(count):
        stream = StreamConnection(host, port, rcvbuf_bytes=4096)
        streams.append(stream)
        stream.send_request("GET", path, {"X-Request-ID": f"wave-{name}-{index}"})
        assert stream.read_head(timeout_s=10).status == 200
        assert stream.read(256, timeout_s=10)
    return streams


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[RunFolder]:
    created = RunFolder.create(tmp_path / "reports", "sampling-test")
    yield created
    created.finish()


def _within_one_interval(counted: list[int], reported: list[float], what: str) -> None:
    """Each count equals the target's own figure at the same tick or at a neighbouring one."""
    assert len(counted) == len(reported), what
    for index, count in enumerate(counted):
        window = reported[max(0, index - 1) : index + 2]
        assert min(window) <= count <= max(window), (
            f"{what}: tick {index} counted {count} upstream connections, but the target reported {window} "
            f"around it (all counted: {counted}; reported: {reported})"
        )


def test_connection_counts_agree_with_targets_through_a_disconnect_wave(stack: Stack, folder: RunFolder) -> None:
    _wait_idle(stack)
    sampler = Sampler(folder, _targets(stack), interval_s=0.1)
    streams: list[StreamConnection] = []
    try:
        sampler.start()
        for name in RELAYS:  # 300 tokens at 50/s: each upstream stream lasts about 6 s unless cancelled
            streams += _open_streams(stack, name, STREAMS_PER_RELAY, "/v1/stream?tokens=300&rate=50")
        time.sleep(0.6)
        sampler.phase("wave")
        for stream in streams:
            stream.close(reset=True)
        time.sleep(1.5)
    finally:
        for stream in streams:
            stream.close(reset=True)
        sampler.stop()

    connections = pd.read_csv(folder.file("connections"))
    stats = pd.read_csv(folder.file("stats"))
    assert (stats["ok"] == 1).all(), stats[stats["ok"] != 1]
    assert set(connections["method"]) == {folder.read_meta()["sampler"]["connections_method"]}
    wave_t = pd.read_csv(folder.file("events")).query("kind == 'phase_start'")["t"].iloc[0]
    upstream_open = stats[stats["target"] == "upstream"].set_index("t")["open_streams"]
    total_counted = None
    for name in RELAYS:
        counted = connections[connections["target"] == name].set_index("t")["established"]
        reported = stats[stats["target"] == name].set_index("t")["open_upstream_streams"]
        assert list(counted.index) == list(reported.index), "connections and stats must share the tick clock"
        _within_one_interval(list(counted), list(reported), name)
        assert counted.max() == STREAMS_PER_RELAY, f"{name} never held all {STREAMS_PER_RELAY} upstream streams"
        total_counted = counted if total_counted is None else total_counted + counted
        final = counted.iloc[-1]
        if name == "eager":
            assert final == STREAMS_PER_RELAY, "eager keeps pumping its upstream after the clients left"
        else:
            assert final == 0, f"{name} should have closed its upstream connections after the resets"
            assert counted[counted.index > wave_t + 1.0].max() == 0
    assert total_counted is not None
    _within_one_interval(list(total_counted), list(upstream_open.loc[total_counted.index]), "upstream")


def test_phase_records_an_event_and_a_uss_reading_per_target(stack: Stack, folder: RunFolder) -> None:
    sampler = Sampler(folder, _targets(stack), interval_s=0.25)
    sampler.start()
    try:
        sampler.phase("warm-up")
    finally:
        sampler.stop()
    events = pd.read_csv(folder.file("events"))
    phase_t = events.query("kind == 'phase_start' and name == 'warm-up'")["t"]
    assert len(phase_t) == 1
    samples = pd.read_csv(folder.file("samples"))
    with_uss = samples[samples["uss_bytes"].notna()]
    assert sorted(with_uss["target"]) == sorted(["upstream", *RELAYS])
    assert (with_uss["t"] == phase_t.iloc[0]).all()
    assert (with_uss["uss_bytes"] > 0).all()
    assert (with_uss["uss_bytes"] <= with_uss["rss_bytes"]).all()
    assert samples["uss_bytes"].isna().sum() > 0, "USS is read only at phase boundaries"


def test_a_vanished_and_a_missing_pid_are_recorded_and_the_others_still_sampled(
    stack: Stack, folder: RunFolder
) -> None:
    reaped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    missing_pid = reaped.pid  # reused below only after it is gone: check it is free then
    try:
        targets = [
            SampledTarget("lazy", "relay", stack.url["lazy"], stack.children["lazy"].pid, None),
            SampledTarget("reaped", "server", None, reaped.pid, None, has_stats=False),
            SampledTarget("zombie", "server", None, zombie.pid, None, has_stats=False),
        ]
        sampler = Sampler(folder, targets, interval_s=0.1)
        sampler.start()
        time.sleep(0.4)
        killed_at = time.time()
        reaped.kill()
        reaped.wait(timeout=10)
        zombie.kill()  # not waited for: stays a zombie while the sampler looks at it
        time.sleep(0.5)
        sampler.stop()
    finally:
        for process in (reaped, zombie):
            process.kill()
            process.wait(timeout=10)
    events = pd.read_csv(folder.file("events"))
    died = events[events["kind"] == "target_died"].set_index("name")
    assert set(died.index) == {"reaped", "zombie"}
    for name in ("reaped", "zombie"):
        assert died.loc[name, "t"] >= killed_at
        assert "vanished" in died.loc[name, "detail"]
        assert "last seen alive" in died.loc[name, "detail"]
    samples = pd.read_csv(folder.file("samples"))
    assert samples[samples["target"] == "lazy"]["t"].max() > died["t"].max(), "lazy must still be sampled"
    assert samples[samples["target"] == "reaped"]["t"].max() < died.loc["reaped", "t"]

    assert not Path(f"/proc/{missing_pid}").exists() or pytest.skip("pid was reused")
    missing = RunFolder.create(folder.path.parent, "missing")
    sampler = Sampler(missing, [SampledTarget("ghost", "server", None, missing_pid, 1, has_stats=False)])
    sampler.start()
    sampler.stop()
    missing.finish()
    ghost = pd.read_csv(missing.file("events"))
    assert list(ghost["kind"]) == ["target_died"]
    assert "did not exist" in ghost["detail"].iloc[0]


_KILLED_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from harness.runfolder import RunFolder
    from harness.sampling import SampledTarget, Sampler
    targets = [SampledTarget(**target) for target in json.loads(sys.argv[2])]
    folder = RunFolder.create(Path(sys.argv[1]), "killed")
    sampler = Sampler(folder, targets, interval_s=0.25)
    sampler.start()
    sampler.phase("load")
    print(folder.path, flush=True)
    time.sleep(60)
    """
)


def test_a_run_killed_with_sigkill_leaves_a_readable_folder(stack: Stack, tmp_path: Path) -> None:
    spec = [
        {"name": t.name, "role": t.role, "url": t.url, "pid": t.pid, "upstream_port": t.upstream_port}
        for t in _targets(stack)
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SCRIPT, str(tmp_path), json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert process.stdout is not None
        path = Path(process.stdout.readline().strip())
        time.sleep(2.0)
        killed_at = time.time()
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    folder = RunFolder.open(path)
    assert folder.read_meta()["status"] == "running", "a killed run is recognised by its status left at running"
    tables: dict[str, Any] = {}
    for name in ("samples", "connections", "stats", "events"):
        tables[name] = pd.read_csv(folder.file(name))
        assert len(tables[name]) > 0, name
    for name in ("samples", "connections", "stats"):
        assert tables[name]["t"].max() >= killed_at - 1.0, f"{name} lost more than the last second"
    assert set(tables["samples"]["target"]) == {"upstream", *RELAYS}


_GEVENT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import json, sys, time
    import gevent
    from pathlib import Path
    from harness.runfolder import RunFolder
    from harness.sampling import SampledTarget, Sampler
    targets = [SampledTarget(**target) for target in json.loads(sys.argv[2])]
    folder = RunFolder.create(Path(sys.argv[1]), "gevent")
    beats = []
    def heartbeat():
        while True:
            beats.append(time.monotonic())
            gevent.sleep(0.01)
    beat = gevent.spawn(heartbeat)
    sampler = Sampler(folder, targets, interval_s=0.25)
    sampler.start()
    gevent.sleep(1.5)
    sampler.phase("end")
    sampler.stop()
    beat.kill()
    folder.finish()
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    print(json.dumps({"path": str(folder.path), "beats": len(beats), "max_gap_s": max(gaps)}))
    """
)


def test_runs_inside_a_gevent_patched_process(stack: Stack, tmp_path: Path) -> None:
    spec = [
        {"name": t.name, "role": t.role, "url": t.url, "pid": t.pid, "upstream_port": t.upstream_port}
        for t in _targets(stack)
    ]
    completed = subprocess.run(
        [sys.executable, "-c", _GEVENT_SCRIPT, str(tmp_path), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    folder = RunFolder.open(Path(result["path"]))
    samples = pd.read_csv(folder.file("samples"))
    stats = pd.read_csv(folder.file("stats"))
    assert samples["t"].nunique() >= 4
    assert (stats["ok"] == 1).all(), stats[stats["ok"] != 1]
    assert result["beats"] > 20, "the sampler must leave the hub free for other greenlets"
    assert folder.read_meta()["status"] == "complete"


def test_rejects_a_bad_interval_and_duplicate_names(folder: RunFolder) -> None:
    with pytest.raises(ValueError, match="interval must be > 0 seconds, but got 0"):
        Sampler(folder, [], interval_s=0)
    twice = [SampledTarget("a", "server", None, os.getpid(), None)] * 2
    with pytest.raises(ValueError, match="names must be unique"):
        Sampler(folder, twice)
