"""Growth analysis: pure comparisons on made-up censuses, and the real eager and lazy relays under the probe.

The integration half runs the bundled stack with profiling on (the relays under ``harness.capture.probe``), holds 20
stalled readers on eager and on lazy against a fast upstream, snapshots both after the warm-up and at the end,
and checks that tracemalloc tracks eager's own count of buffered bytes and that the growth report says who
keeps them: the relay's ByteBuffer, although aiohttp allocated them.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.analyse import growth
from harness.analyse.growth import GrowthReport, TracemallocFiles, analyse, compare_censuses, keepers, write_report
from harness.capture.probe_client import ProbeClient, TracedMemory
from harness.launch.process import ChildProcess, stop_all
from harness.launch.stack import StackOptions, add_stack_arguments, start_bundled_stack
from harness.load.stream_client import StreamConnection, split_url

MiB = 2**20


def census(types: dict[str, int], held: dict[tuple[str, str], int], holders: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "format": 1,
        "types": [{"type": name, "count": size // 100, "bytes": size} for name, size in types.items()],
        "held": [
            {"container": container, "leaf": leaf, "count": size // 100, "bytes": size}
            for (container, leaf), size in held.items()
        ],
        "holders": [{"container": container, "held_bytes": 1, "held_by": by} for container, by in holders],
    }


def test_compare_censuses_orders_by_growth_and_names_the_most_sampled_holder() -> None:
    before = census({"bytes": 1 * MiB, "dict": 2 * MiB}, {("deque", "bytes"): MiB, ("dict", "str"): MiB}, [])
    after = census(
        {"bytes": 41 * MiB, "dict": 2 * MiB, "Thing": 100},
        {("deque", "bytes"): 41 * MiB, ("dict", "str"): MiB // 2, ("list", "bytes"): 3 * MiB},
        [("deque", "app.Buffer._chunks"), ("deque", "app.Buffer._chunks"), ("deque", "aiohttp.StreamReader._buffer")],
    )
    types, held = compare_censuses(before, after)
    assert [(row.type, row.bytes_diff) for row in types[:2]] == [("bytes", 40 * MiB), ("Thing", 100)]
    assert [(row.container, row.leaf, row.bytes_diff) for row in held] == [
        ("deque", "bytes", 40 * MiB),
        ("list", "bytes", 3 * MiB),
        ("dict", "str", -MiB // 2),
    ]
    assert held[0].held_by == ("app.Buffer._chunks (2 of 3 sampled)", "aiohttp.StreamReader._buffer (1 of 3 sampled)")
    sentences = keepers(held, [])
    assert sentences == [
        "+40.0 MiB of bytes held by deque, kept in app.Buffer._chunks (2 of 3 sampled)",
        "+3.0 MiB of bytes held by list",
    ]


def test_no_growth_gives_no_keepers() -> None:
    same = census({"bytes": MiB}, {("deque", "bytes"): MiB}, [("deque", "app.Buffer._chunks")])
    _, held = compare_censuses(same, same)
    assert keepers(held, []) == []


def test_missing_snapshots_are_a_run_folder_error_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert growth.main([str(tmp_path), "eager"]) == 2
    err = capsys.readouterr().err
    assert "eager.warmup.tracemalloc" in err
    assert "does not exist" in err


# -- the real relays under the probe -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    reports: dict[str, GrowthReport]
    files: dict[str, TracemallocFiles]
    idle: dict[str, TracedMemory]
    pairs: list[tuple[int, int, int]]
    """eager: (traced before, buffered_bytes, traced after) around each stats read."""


def _stack_options() -> StackOptions:
    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    flags = ["--upstream-rate", "0", "--upstream-tokens", "3000", "--upstream-token-bytes", "1024"]
    args = parser.parse_args([*flags, "--profile-nframe", "1", "--ready-timeout", "30"])
    return StackOptions.from_args(args, ("eager", "lazy"))


def _buffered(child: ChildProcess) -> int:
    with urllib.request.urlopen(f"{child.url}/__harness/stats", timeout=10) as response:
        return int(json.load(response)["buffered_bytes"])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    folder = tmp_path_factory.mktemp("growth")
    options = _stack_options()
    assert options.profile_nframe == 1
    children = start_bundled_stack(options, folder / "logs")
    connections: list[StreamConnection] = []
    try:
        relays = {child.name: child for child in children if child.name in ("eager", "lazy")}
        probes = {name: ProbeClient.for_child(child) for name, child in relays.items()}
        files = {name: TracemallocFiles(folder / "tracemalloc", name) for name in relays}
        idle = {name: probe.traced() for name, probe in probes.items()}
        for name, child in relays.items():
            host, port, _ = split_url(str(child.url))
            for index in range(20):  # stalled readers: they read nothing at all
                connection = StreamConnection(host, port, rcvbuf_bytes=4096)
                connections.append(connection)
                connection.send_request("GET", "/v1/stream", {"X-Request-ID": f"{name}-{index}"})
        time.sleep(0.3)
        for name, probe in probes.items():
            probe.snapshot(files[name].snapshot(growth.BEFORE), files[name].census(growth.BEFORE))
        pairs = []
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            before = probes["eager"].traced().current_bytes
            buffered = _buffered(relays["eager"])
            pairs.append((before, buffered, probes["eager"].traced().current_bytes))
            time.sleep(0.25)
        for name, probe in probes.items():
            probe.snapshot(files[name].snapshot(growth.AFTER), files[name].census(growth.AFTER))
        for connection in connections:
            connection.close(reset=True)
        reports = {name: analyse(files[name]) for name in relays}
        yield Loaded(reports, files, idle, pairs)
    finally:
        for connection in connections:
            connection.close(reset=True)
        stop_all(children, grace_s=3)


@pytest.mark.slow
def test_traced_memory_of_eager_tracks_its_buffered_bytes_within_20_percent(loaded: Loaded) -> None:
    idle = loaded.idle["eager"].current_bytes
    compared = [
        (buffered, (before + after) / 2 - idle) for before, buffered, after in loaded.pairs if buffered > 16 * MiB
    ]
    assert len(compared) >= 3, loaded.pairs  # the buffer did fill
    for buffered, traced in compared:
        assert abs(traced - buffered) <= 0.2 * buffered, (buffered, traced)


@pytest.mark.slow
def test_eager_growth_is_allocated_in_aiohttp_but_kept_by_the_relays_buffer(loaded: Loaded) -> None:
    report = loaded.reports["eager"]
    assert report.snapshot_diff_bytes > 20 * MiB
    assert report.sites[0].site.startswith("aiohttp/"), report.sites[0]  # where it was allocated...
    top = report.held[0]
    assert (top.container, top.leaf) == ("collections.deque", "bytes")
    assert top.bytes_diff > 0.8 * report.snapshot_diff_bytes, (top, report.snapshot_diff_bytes)
    assert top.held_by, top
    assert top.held_by[0].startswith("targets.relay.ByteBuffer._chunks"), top.held_by  # ...and who keeps it
    assert report.keepers[0].startswith(f"+{top.bytes_diff / MiB:.1f} MiB of bytes held by collections.deque")
    assert "targets.relay.ByteBuffer._chunks" in report.keepers[0]
    for site in report.sites:
        assert "harness/" not in " ".join(site.traceback), site  # the probe's own allocations are filtered out


@pytest.mark.slow
def test_lazy_growth_is_small(loaded: Loaded) -> None:
    lazy, eager = loaded.reports["lazy"], loaded.reports["eager"]
    assert abs(lazy.snapshot_diff_bytes) < 2 * MiB, lazy.sites[:3]
    assert lazy.keepers == ()
    assert eager.snapshot_diff_bytes > 10 * abs(lazy.snapshot_diff_bytes)


@pytest.mark.slow
def test_growth_tables_are_written_where_the_run_folder_expects_them(
    loaded: Loaded, capsys: pytest.CaptureFixture[str]
) -> None:
    files = loaded.files["eager"]
    written = write_report(loaded.reports["eager"], files)
    assert written == [files.sites, files.types, files.held, files.summary]
    sites = pd.read_csv(files.sites)
    assert list(sites.columns[:3]) == ["rank", "size_diff_bytes", "count_diff"]
    assert sites["size_diff_bytes"].iloc[0] == loaded.reports["eager"].sites[0].size_diff_bytes
    held = pd.read_csv(files.held)
    assert held["held_by"].iloc[0].startswith("targets.relay.ByteBuffer._chunks")
    summary = json.loads(files.summary.read_text())
    assert summary["keepers"] == list(loaded.reports["eager"].keepers)
    assert growth.main([str(files.folder), "eager", "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "who keeps it" in out
    assert len(pd.read_csv(files.sites)) == 5
