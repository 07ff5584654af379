"""The analysis on crafted run folders with known answers: memory series, stream matching, cancellation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.analyse.analysis import analyse_run
from harness.analyse.growth import GrowthReport, GrowthSite, HeldGrowth, TracemallocFiles, write_report
from harness.analyse.run_data import load_run
from harness.errors import RunFolderError
from harness.runfolder import RunFolder
from tests.runfolders import (
    BASE_RSS,
    MIB,
    CraftedRun,
    flat,
    leak,
    leaving_streams,
    sawtooth,
    slow_readers,
    warmup_spike,
)


def analyse(folder: Path) -> dict[str, Any]:
    return analyse_run(load_run(folder))


def _memory_run(tmp_path: Path, series: dict[str, object]) -> dict[str, object]:
    streams = [stream for name in series for stream in slow_readers(name, 4)]
    run = CraftedRun(rss=series, streams=streams)  # type: ignore[arg-type]
    return analyse(run.write(tmp_path))


def test_flat_series_has_no_growth_and_a_trend_interval_around_zero(tmp_path: Path) -> None:
    target = _memory_run(tmp_path, {"lazy": flat()})["targets"]["lazy"]
    memory = target["memory"]
    assert abs(memory["baseline_rss_bytes"] - BASE_RSS) < 128 * 1024
    assert memory["growth_bytes"] < 256 * 1024  # the peak of the noise, no more
    assert abs(memory["retained_growth_bytes"]) < 128 * 1024
    assert memory["slope_low_bytes_per_s"] <= 0 <= memory["slope_high_bytes_per_s"]


def test_steady_leak_is_measured_at_its_rate_and_fails(tmp_path: Path) -> None:
    rate = 1 * MIB  # per second, from the end of the warm-up on
    memory = _memory_run(tmp_path, {"eager": leak(rate, start_s=10.0)})["targets"]["eager"]
    assert memory["memory"]["slope_bytes_per_s"] == pytest.approx(rate, rel=0.02)
    assert memory["memory"]["slope_low_bytes_per_s"] > 0.9 * rate
    assert memory["memory"]["growth_bytes"] == pytest.approx(40 * rate, rel=0.02)  # leaks through the drain too
    assert memory["memory"]["retained_growth_bytes"] > 35 * rate
    assert memory["memory"]["held_per_client_bytes"] == pytest.approx(memory["memory"]["growth_bytes"] / 4)


def test_warmup_spike_is_left_out_of_the_baseline_and_the_growth(tmp_path: Path) -> None:
    memory = _memory_run(tmp_path, {"lazy": warmup_spike(50 * MIB, at_s=2.0, length_s=3.0)})["targets"]["lazy"]
    assert abs(memory["memory"]["baseline_rss_bytes"] - BASE_RSS) < 128 * 1024
    assert memory["memory"]["growth_bytes"] < 256 * 1024


def test_sawtooth_has_no_trend_and_passes(tmp_path: Path) -> None:
    memory = _memory_run(tmp_path, {"bounded": sawtooth(8 * MIB, period_s=5.0)})["targets"]["bounded"]
    # the baseline is the median of the warm-up's last quarter (7.5-10 s: the upper half of a tooth, median 3/4)
    assert memory["memory"]["baseline_rss_bytes"] == pytest.approx(BASE_RSS + 6 * MIB, abs=0.6 * MIB)
    assert memory["memory"]["growth_bytes"] == pytest.approx(2 * MIB, abs=0.6 * MIB)
    # Theil-Sen leans toward the rising ramps (every pair within a tooth is steep), but over the whole load the
    # trend stays well under one tooth, where a leak's would be many
    assert abs(memory["memory"]["slope_bytes_per_s"]) * memory["memory"]["trend_window_s"] < 0.5 * 8 * MIB


def test_backlog_has_no_figures_without_slow_readers(tmp_path: Path) -> None:
    run = CraftedRun(rss={"eager": leak(MIB, start_s=10.0)})
    backlog = analyse(run.write(tmp_path))["targets"]["eager"]["backlog"]
    assert backlog == {"available": False, "reason": "no slow or stalled reader of eager in this run"}


def _cancel_run(tmp_path: Path) -> dict[str, object]:
    lazy = leaving_streams("lazy", [0.010, 0.020, 0.030, 0.040, 0.050], read_s=1.0)
    eager = leaving_streams("eager", [2.0, 2.0, 2.0, None, None])  # two still open after the drain
    run = CraftedRun(rss={"lazy": flat(), "eager": flat()}, streams=lazy + eager)
    return analyse(run.write(tmp_path))


def test_cancellation_latencies_are_matched_by_stream_id(tmp_path: Path) -> None:
    lazy = _cancel_run(tmp_path)["targets"]["lazy"]  # type: ignore[index]
    cancel = lazy["cancellation"]
    assert cancel["left_streams"] == 5
    assert cancel["never_closed"] == 0
    assert cancel["latency_p50_ms"] == pytest.approx(30.0, abs=0.01)
    assert cancel["latency_max_ms"] == pytest.approx(50.0, abs=0.01)
    assert cancel["latency_p99_ms"] == pytest.approx(49.6, abs=0.01)  # linear interpolation between 40 and 50
    assert lazy["upstream"]["orphans_at_end"] == 0
    assert lazy["upstream"]["orphan_stream_seconds"] == pytest.approx(0.150, abs=1e-3)
    assert cancel["tokens_after_leave_share"] < 0.05


def test_streams_never_closed_are_orphans_and_fail(tmp_path: Path) -> None:
    eager = _cancel_run(tmp_path)["targets"]["eager"]  # type: ignore[index]
    cancel, upstream = eager["cancellation"], eager["upstream"]
    assert (cancel["closed"], cancel["never_closed"]) == (3, 2)
    assert cancel["latency_p50_ms"] == pytest.approx(2000.0, abs=0.01)
    assert upstream["orphans_at_end"] == 2
    assert upstream["basis"] == "id:header"
    assert cancel["tokens_produced"] == 3 * 105 + 2 * 5
    # closed ones: of the 100 tokens produced in the 2 s after the client left, those after the first 0.5 s (the
    # reaction allowance): 105 tokens over 2.085 s of production, 1.5 s of it counted; the open ones sent nothing
    assert cancel["reaction_s"] == 0.5
    assert cancel["tokens_after_leave"] == pytest.approx(3 * 105 * 1.5 / 2.085, abs=0.5)
    assert cancel["undelivered_tokens"] == 300


def test_dropped_stream_ids_are_paired_by_time_order_and_the_kernel_count_only_corroborates(tmp_path: Path) -> None:
    streams = leaving_streams("opaque", [0.01, 0.01, None], to_upstream=False)
    run = CraftedRun(
        rss={"opaque": flat()},
        streams=streams,
        kernel_established={"opaque": lambda t: 5},  # an idle keep-alive pool: connections, not streams
    )
    target = analyse(run.write(tmp_path))["targets"]["opaque"]
    upstream, cancel = target["upstream"], target["cancellation"]
    assert upstream["basis"] == "time order"
    assert upstream["matched_streams"] == 3
    assert upstream["orphans_at_end"] == 1  # the upstream's own books, not the kernel's 5
    assert upstream["upstream_open_at_end_kernel"] == 5
    assert (cancel["closed"], cancel["never_closed"]) == (2, 1)
    assert cancel["latency_p50_ms"] == pytest.approx(10.0, abs=0.01)


def test_summary_is_strict_json(tmp_path: Path) -> None:
    folder = CraftedRun(rss={"lazy": flat()}, streams=leaving_streams("lazy", [0.01])).write(tmp_path)
    summary = analyse(folder)
    assert json.loads(json.dumps(summary), parse_constant=lambda name: pytest.fail(name)) == summary
    assert [phase["name"] for phase in summary["run"]["phases"]] == ["warm-up", "load", "drain"]
    assert summary["run"]["windows"]["source"] == "phases"


def test_interrupted_run_is_analysed_and_marked_incomplete(tmp_path: Path) -> None:
    folder = CraftedRun(rss={"lazy": flat()}, status="interrupted").write(tmp_path)
    summary = analyse(folder)
    assert summary["run"]["complete"] is False
    assert "interrupted" in summary["run"]["incomplete_reason"]
    assert summary["targets"]["lazy"]["memory"]["available"] is True


def test_missing_optional_data_leaves_sections_out_with_a_reason(tmp_path: Path) -> None:
    folder = CraftedRun(rss={}, roles={"lazy": "relay"}, streams=leaving_streams("lazy", [0.01])).write(tmp_path)
    target = analyse(folder)["targets"]["lazy"]
    assert target["memory"] == {"available": False, "reason": target["memory"]["reason"]}
    assert "no RSS samples" in target["memory"]["reason"]
    assert target["tracemalloc"]["available"] is False
    assert "profiling was off" in target["tracemalloc"]["reason"]


def test_phases_missing_use_stand_in_windows(tmp_path: Path) -> None:
    folder = CraftedRun(phases=(("load", 0.0, 50.0),), rss={"lazy": flat()}).write(tmp_path)
    summary = analyse(folder)
    assert "no warm-up phase" in summary["run"]["windows"]["source"]
    assert summary["run"]["windows"]["warmup_end_s"] == pytest.approx(5.0)
    assert any("no drain phase" in note for note in summary["notes"])


def test_tracemalloc_growth_is_carried_into_the_summary(tmp_path: Path) -> None:
    folder = CraftedRun(rss={"eager": flat()}).write(tmp_path)
    site = GrowthSite(1, 50 * MIB, 1000, 60 * MIB, 1200, "aiohttp/client_proto.py:1", "self._buffer", ())
    held = HeldGrowth("collections.deque", "bytes", 900, 0, 50 * MIB, 50 * MIB, ("targets.relay.ByteBuffer._chunks",))
    report = GrowthReport("eager", 0, 50 * MIB, 50 * MIB, (site,), (), (held,), ("+50.0 MiB of bytes held by deque",))
    write_report(report, TracemallocFiles(folder / "tracemalloc", "eager"))
    growth = analyse(folder)["targets"]["eager"]["tracemalloc"]
    assert growth["available"] is True
    assert growth["sites"][0]["site"] == "aiohttp/client_proto.py:1"
    assert growth["held"][0]["held_by"] == "targets.relay.ByteBuffer._chunks"
    assert growth["keepers"] == ["+50.0 MiB of bytes held by deque"]


def test_not_a_run_folder_and_an_empty_run_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="no meta.json"):
        analyse(tmp_path)
    with pytest.raises(RunFolderError, match="does not exist"):
        analyse(tmp_path / "missing")
    empty = RunFolder.create(tmp_path, "empty")
    empty.finish("interrupted")
    with pytest.raises(RunFolderError, match="holds no measurements"):
        analyse(empty.path)


def test_profiled_target_is_judged_on_traced_memory_not_on_snapshot_inflated_rss(tmp_path: Path) -> None:
    # Under the probe, each snapshot leaves RSS a step higher for good (measured: +12 MiB, then +7 MiB), while the
    # Python heap in use (traced) stays flat: the verdict must not blame the server for the harness's snapshots.
    def snapshots(t: float) -> float:
        return BASE_RSS + (12 * MIB if t >= 10.0 else 0.0) + (7 * MIB if t >= 40.0 else 0.0)

    streams = [*slow_readers("lazy", 4), *slow_readers("eager", 4, tokens_sent=20_000)]
    run = CraftedRun(
        rss={"lazy": snapshots, "eager": snapshots},
        traced={"lazy": flat(), "eager": leak(1 * MIB, start_s=10.0)},
        streams=streams,
    )
    targets = analyse(run.write(tmp_path))["targets"]
    lazy, eager = targets["lazy"], targets["eager"]
    assert lazy["memory"]["growth_bytes"] > 18 * MIB  # RSS: the snapshots' high-water mark
    assert lazy["traced_memory"]["growth_bytes"] < 256 * 1024
    assert eager["traced_memory"]["slope_bytes_per_s"] == pytest.approx(1 * MIB, rel=0.02)
    assert "baseline_traced_bytes" in eager["traced_memory"]
