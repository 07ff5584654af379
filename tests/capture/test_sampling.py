"""The Sampler against the real bundled stack: one clock, agreement with the targets' own counters, crash safety,
traced memory and snapshots through the tracemalloc probe, and targets on another host through a real agent."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.analyse import growth
from harness.analyse.growth import TracemallocFiles
from harness.capture.probe_client import ProbeClient
from harness.capture.sampling import SampledTarget, Sampler
from harness.capture.snapshots import SnapshotRound
from harness.launch.process import stop_all
from harness.launch.stack import StackOptions, add_stack_arguments, start_bundled_stack
from harness.load.stream_client import StreamConnection, split_url
from harness.runfolder import RunFolder
from tests.support import Stack, agent_running, free_port, run_python

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


def _within_one_interval(counted: list[int], reported: list[float], what: str) -> None:
    """Each count equals the target's own figure at the same tick or at a neighbouring one."""
    assert len(counted) == len(reported), what
    for index, count in enumerate(counted):
        window = reported[max(0, index - 1) : index + 2]
        if index == 0:
            window = [0.0, *window]  # nothing was open before the first tick (the stack was idle)
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
    from harness.capture.sampling import SampledTarget, Sampler
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
        cwd=Path(__file__).parents[2],
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
    from harness.capture.sampling import SampledTarget, Sampler
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
    result = json.loads("\n".join(run_python(_GEVENT_SCRIPT, str(tmp_path), json.dumps(spec))))
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


# -- tracemalloc through the sampler: traced memory per tick, snapshots, growth ----------------------------------

MiB = 2**20


@dataclass(frozen=True, slots=True)
class Profiled:
    folder: RunFolder
    rounds: tuple[SnapshotRound, SnapshotRound]
    ticks_during_end_snapshot: int
    samples: pd.DataFrame
    events: pd.DataFrame
    meta: dict[str, Any]


def _profiled_options() -> StackOptions:
    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    flags = ["--upstream-rate", "0", "--upstream-tokens", "3000", "--upstream-token-bytes", "1024"]
    args = parser.parse_args([*flags, "--profile-nframe", "1", "--ready-timeout", "30"])
    return StackOptions.from_args(args, ("eager", "lazy"))


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Profiled]:
    """eager and lazy under the probe, 20 stalled readers each, sampled and snapshotted through a Sampler."""
    root = tmp_path_factory.mktemp("profiled")
    folder = RunFolder.create(root / "reports", "profiled")
    children = start_bundled_stack(_profiled_options(), folder.logs)
    connections: list[StreamConnection] = []
    try:
        by_name = {child.name: child for child in children}
        targets = [SampledTarget("upstream", "upstream", by_name["upstream"].url, by_name["upstream"].pid, None)]
        upstream_port = split_url(str(by_name["upstream"].url))[1]
        for name in ("eager", "lazy"):
            child = by_name[name]
            probe = ProbeClient.for_child(child)
            targets.append(SampledTarget(name, "relay", child.url, child.pid, upstream_port, probe=probe))
        sampler = Sampler(folder, targets, interval_s=0.25)
        sampler.start()
        try:
            sampler.phase("warm-up")
            for name in ("eager", "lazy"):
                host, port, _ = split_url(str(by_name[name].url))
                for index in range(20):  # stalled readers: they read nothing at all
                    connection = StreamConnection(host, port, rcvbuf_bytes=4096)
                    connections.append(connection)
                    connection.send_request("GET", "/v1/stream", {"X-Request-ID": f"{name}-{index}"})
            time.sleep(0.3)
            before = sampler.phase("stalled", snapshot_label=growth.BEFORE)
            assert before is not None
            assert before.wait(60), before
            time.sleep(3.0)
            after = sampler.phase("drain", snapshot_label=growth.AFTER)
            assert after is not None
            ticks = sampler.ticks
            assert after.wait(120), after
            ticks_during = sampler.ticks - ticks
        finally:
            for connection in connections:
                connection.close(reset=True)
            sampler.stop()
        folder.finish()
        yield Profiled(
            folder,
            (before, after),
            ticks_during,
            pd.read_csv(folder.file("samples")),
            pd.read_csv(folder.file("events")),
            folder.read_meta(),
        )
    finally:
        for connection in connections:
            connection.close(reset=True)
        stop_all(children, grace_s=3)


@pytest.mark.slow
def test_traced_memory_is_sampled_each_tick_and_grows_for_eager_not_lazy(profiled: Profiled) -> None:
    samples = profiled.samples
    assert {"traced_bytes", "traced_peak_bytes"} <= set(samples.columns)
    end_t = profiled.events.query("kind == 'phase_start' and name == 'drain'")["t"].iloc[0]
    growth_by_target = {}
    for name in ("eager", "lazy"):
        traced = samples[(samples["target"] == name) & samples["traced_bytes"].notna() & (samples["t"] < end_t)]
        assert len(traced) >= 8, f"{name}: only {len(traced)} ticks read traced memory"
        assert (traced["traced_peak_bytes"] >= traced["traced_bytes"]).all()
        growth_by_target[name] = traced["traced_bytes"].iloc[-1] - traced["traced_bytes"].iloc[0]
    assert growth_by_target["eager"] > 16 * MiB, growth_by_target
    assert growth_by_target["eager"] > 5 * abs(growth_by_target["lazy"]), growth_by_target
    upstream = samples[samples["target"] == "upstream"]
    assert upstream["traced_bytes"].isna().all(), "the upstream does not run under the probe"
    warnings = profiled.events[profiled.events["kind"] == "sampler_warning"]
    assert not warnings["name"].eq("probe").any(), warnings


@pytest.mark.slow
def test_snapshots_through_the_sampler_name_the_relays_buffer_as_eagers_holder(profiled: Profiled) -> None:
    before, after = profiled.rounds
    for snapshot_round in (before, after):
        assert snapshot_round.done
        assert sorted(snapshot_round.taken) == ["eager", "lazy"], snapshot_round.errors
    files = TracemallocFiles(profiled.folder.tracemalloc, "eager")
    for path in (files.snapshot(growth.BEFORE), files.census(growth.AFTER), files.sites, files.held, files.summary):
        assert path.is_file(), path
    meta = profiled.meta["tracemalloc"]
    assert meta["profiled"] == [{"target": "eager", "nframe": 1}, {"target": "lazy", "nframe": 1}]
    assert set(meta["snapshots"]["eager"]) == {growth.BEFORE, growth.AFTER}
    assert meta["snapshots"]["eager"][growth.AFTER]["stalled_s"] > 0
    eager = meta["growth"]["eager"]
    assert eager["summary"] == files.summary.name
    assert eager["keepers"], eager
    assert "targets.relay.ByteBuffer._chunks" in eager["keepers"][0]
    assert eager["keepers"] == json.loads(files.summary.read_text())["keepers"]
    assert meta["growth"]["lazy"]["keepers"] == []
    snapshots = profiled.events[profiled.events["kind"] == "tracemalloc_snapshot"]
    assert sorted(snapshots["name"]) == ["eager", "eager", "lazy", "lazy"]
    kept = profiled.events.query("kind == 'tracemalloc_growth' and name == 'eager'")["detail"]
    assert "targets.relay.ByteBuffer._chunks" in kept.iloc[0]


@pytest.mark.slow
def test_ticks_go_on_while_a_snapshot_stalls_its_target(profiled: Profiled) -> None:
    stalled_s = max(profiled.rounds[1].taken[name].took_s for name in ("eager", "lazy"))
    # Ticks every 0.25 s; a snapshot shorter than two of them proves nothing either way.
    if stalled_s < 0.5:
        pytest.skip(f"the end snapshot stalled its target only {stalled_s:.3f} s")
    assert profiled.ticks_during_end_snapshot >= 1, stalled_s


def _silent_port(stack: contextlib.ExitStack) -> int:
    """A loopback port that accepts connections and never answers."""
    listener = socket.socket()
    stack.callback(listener.close)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return int(listener.getsockname()[1])


def test_a_probe_that_does_not_answer_leaves_traced_blank_with_one_warning(folder: RunFolder) -> None:
    with contextlib.ExitStack() as cleanup:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        closed_port = int(closed.getsockname()[1])
        closed.close()
        targets = [
            SampledTarget(
                "refused",
                "server",
                None,
                os.getpid(),
                None,
                has_stats=False,
                probe=ProbeClient(closed_port, "token", target="refused"),
            ),
            SampledTarget(
                "silent",
                "server",
                None,
                None,
                None,
                has_stats=False,
                probe=ProbeClient(_silent_port(cleanup), "token", target="silent", timeout_s=30),
            ),
        ]
        sampler = Sampler(folder, targets, interval_s=0.1)
        sampler.start()
        try:
            time.sleep(1.0)
            ticks = sampler.ticks
        finally:
            sampler.stop()
    # 30 s probe timeout: a tick that waited for the silent probe would have taken one tick in that second.
    assert ticks >= 4, f"only {ticks} ticks in 1 s: the tick waited for a probe that never answers"
    samples = pd.read_csv(folder.file("samples"))
    assert samples["traced_bytes"].isna().all()
    assert (samples["target"] == "refused").sum() >= 4, "the process readings go on"
    warnings = pd.read_csv(folder.file("events")).query("kind == 'sampler_warning' and name == 'probe'")
    assert len(warnings) == 2, warnings
    assert any("probe of refused did not answer" in detail for detail in warnings["detail"])
    assert any("probe of silent did not answer" in detail for detail in warnings["detail"])
    assert folder.read_meta()["tracemalloc"]["profiled"] == [
        {"target": "refused", "nframe": None},
        {"target": "silent", "nframe": None},
    ]


def test_snapshot_without_probes_is_done_at_once_and_labels_are_checked(folder: RunFolder) -> None:
    sampler = Sampler(folder, [SampledTarget("me", "server", None, os.getpid(), None, has_stats=False)])
    sampler.start()
    try:
        snapshot_round = sampler.phase("load", snapshot_label=growth.BEFORE)
        assert snapshot_round is not None
        assert snapshot_round.done
        assert snapshot_round.taken == {}
        with pytest.raises(ValueError, match="snapshot label must be letters, digits, - or _ .*but got '../x'"):
            sampler.snapshot("../x")
    finally:
        sampler.stop()
    assert "tracemalloc" not in folder.read_meta()


# -- targets on another host, through harness agent ---------------------------------------------------------------


def test_an_agents_rows_land_in_the_masters_tables_under_the_masters_name(
    stack: Stack, folder: RunFolder, tmp_path: Path
) -> None:
    with agent_running(stack, "lazy", tmp_path / "agent", as_name="server") as agent:
        url = str(agent.url)
        targets = [
            SampledTarget("upstream", "upstream", stack.url["upstream"], stack.children["upstream"].pid, None),
            SampledTarget("lazy-far", "relay", None, None, None, has_stats=False, agent_url=url),
        ]
        sampler = Sampler(folder, targets, interval_s=0.1, agent_poll_s=0.3)
        sampler.start()
        try:
            time.sleep(1.5)
        finally:
            sampler.stop()
    samples = pd.read_csv(folder.file("samples"))
    connections = pd.read_csv(folder.file("connections"))
    stats = pd.read_csv(folder.file("stats"))
    far = samples[samples["target"] == "lazy-far"]
    assert len(far) >= 5, far
    assert (far["pid"] == stack.children["lazy"].pid).all()
    assert far["t"].is_unique
    assert set(connections["target"]) == {"lazy-far"}, "only the agent counts connections here"
    assert set(stats["target"]) == {"upstream", "lazy-far"}
    assert (stats[stats["target"] == "lazy-far"]["ok"] == 1).all()
    assert "server" not in set(samples["target"])
    agents = folder.read_meta()["agents"]
    assert agents["lazy-far"]["status"] == "complete"
    assert agents["lazy-far"]["agent_targets"] == ["server"]
    assert agents["lazy-far"]["rows"]["samples"] == len(far)
    assert abs(agents["lazy-far"]["clock_offset_s"]) <= agents["lazy-far"]["clock_round_trip_s"] / 2 + 0.001
    events = pd.read_csv(folder.file("events"))
    assert "agent_unreachable" not in set(events["kind"])


def test_an_unreachable_agent_gives_one_event_and_the_run_goes_on(stack: Stack, folder: RunFolder) -> None:
    port = free_port()
    targets = [
        SampledTarget("upstream", "upstream", stack.url["upstream"], stack.children["upstream"].pid, None),
        SampledTarget("far", "server", None, None, None, has_stats=False, agent_url=f"http://127.0.0.1:{port}"),
    ]
    sampler = Sampler(folder, targets, interval_s=0.1, agent_poll_s=0.2)
    sampler.start()
    try:
        time.sleep(1.0)
    finally:
        sampler.stop()
    events = pd.read_csv(folder.file("events"))
    unreachable = events[events["kind"] == "agent_unreachable"]
    assert list(unreachable["name"]) == ["far"]
    assert f"127.0.0.1:{port}" in unreachable["detail"].iloc[0]
    samples = pd.read_csv(folder.file("samples"))
    assert (samples["target"] == "upstream").sum() >= 5, "the local targets are still sampled"
    far = folder.read_meta()["agents"]["far"]
    assert far["status"] == "missing"
    assert far["failed_polls"] >= 3
    assert far["rows"] == {}


def test_a_target_with_an_agent_cannot_have_a_local_pid(folder: RunFolder) -> None:
    with pytest.raises(ValueError, match="its pid must be None .*but got 1"):
        Sampler(folder, [SampledTarget("far", "server", None, 1, None, agent_url="http://127.0.0.1:9")])


_GEVENT_SILENT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import json, os, socket, sys, time
    import gevent
    from pathlib import Path
    from harness.capture.probe_client import ProbeClient
    from harness.runfolder import RunFolder
    from harness.capture.sampling import SampledTarget, Sampler
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    probe = ProbeClient(silent.getsockname()[1], "token", target="silent", timeout_s=30)
    targets = [
        SampledTarget("me", "server", None, os.getpid(), None, has_stats=False, probe=probe),
        SampledTarget("far", "server", None, None, None, has_stats=False, agent_url=sys.argv[2]),
    ]
    folder = RunFolder.create(Path(sys.argv[1]), "gevent-silent")
    beats = []
    def heartbeat():
        while True:
            beats.append(time.monotonic())
            gevent.sleep(0.01)
    beat = gevent.spawn(heartbeat)
    sampler = Sampler(folder, targets, interval_s=0.1, agent_poll_s=0.2, snapshot_timeout_s=1.0)
    sampler.start()
    gevent.sleep(1.0)
    snapshot_round = sampler.snapshot("warmup")
    gevent.sleep(0.5)
    ticks = sampler.ticks
    sampler.stop()
    beat.kill()
    folder.finish()
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    print(json.dumps({"path": str(folder.path), "ticks": ticks, "max_gap_s": max(gaps),
                      "errors": snapshot_round.errors}))
    """
)


def test_silent_probes_and_unreachable_agents_do_not_block_a_gevent_process(tmp_path: Path) -> None:
    silent_agent = contextlib.ExitStack()
    with silent_agent:
        agent_url = f"http://127.0.0.1:{_silent_port(silent_agent)}"
        lines = run_python(_GEVENT_SILENT_SCRIPT, str(tmp_path), agent_url, timeout_s=90)
    result = json.loads("\n".join(lines))
    assert result["ticks"] >= 8, f"{result['ticks']} ticks in 1.5 s at 100 ms: something blocked the ticks"
    assert result["max_gap_s"] < 1.0, "a silent peer held the gevent hub"
    assert "did not answer POST /snapshot within 1 s" in result["errors"]["me"]
    events = pd.read_csv(RunFolder.open(Path(result["path"])).file("events"))
    assert list(events.query("kind == 'agent_unreachable'")["name"]) == ["far"]
    assert (events.query("kind == 'sampler_warning'")["name"] == "probe").sum() == 1
