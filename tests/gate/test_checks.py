"""The gate's checks on crafted run folders with known series and streams, and as pure functions of figures."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.analyse.analysis import SUMMARY
from harness.errors import RunFolderError, UsageError
from harness.gate.checks import (
    CheckResult,
    GateVerdict,
    check_cancel_latency,
    check_leaked_streams,
    check_memory,
    check_regression,
    check_tokens_after_leave,
    gate,
    judge,
    read_baseline,
)
from harness.gate.config import GateLimits, GateOptions, Tolerance
from tests.runfolders import (
    BASE_RSS,
    MIB,
    CraftedRun,
    Series,
    flat,
    leak,
    leaving_streams,
    sawtooth,
    slow_readers,
    step,
    warmup_spike,
)

LIMITS = GateLimits()


def _memory(tmp_path: Path, series: Series, name: str = "lazy") -> CheckResult:
    run = CraftedRun(rss={name: series}, streams=list(slow_readers(name, 4)))
    verdict = gate(run.write(tmp_path), GateOptions())
    (result,) = [result for result in verdict.results if result.check == "memory"]
    return result


# -- memory on synthetic series ------------------------------------------------------------------------------------
def test_flat_series_with_noise_passes(tmp_path: Path) -> None:
    result = _memory(tmp_path, flat(noise_bytes=2 * MIB))
    assert result.state == "pass", result.sentence
    assert result.sentence.startswith("lazy: RSS grew ")
    assert "(limit 16.0 MiB)" in result.sentence


def test_sawtooth_passes(tmp_path: Path) -> None:
    result = _memory(tmp_path, sawtooth(12 * MIB, period_s=5.0))
    assert result.state == "pass", result.sentence


@pytest.mark.parametrize(
    "series",
    [step(30 * MIB, at_s=3.0), warmup_spike(50 * MIB, at_s=2.0, length_s=3.0)],
    ids=["warm-up step", "warm-up spike"],
)
def test_growth_during_the_warm_up_is_discarded(tmp_path: Path, series: Series) -> None:
    result = _memory(tmp_path, series)
    assert result.state == "pass", result.sentence


def test_slow_steady_leak_fails_naming_growth_limit_and_trend(tmp_path: Path) -> None:
    result = _memory(tmp_path, leak(0.6 * MIB, start_s=10.0), name="eager")
    assert result.state == "fail", result.sentence
    assert result.sentence.startswith("eager: RSS grew ")
    assert "after warm-up (limit 16.0 MiB)" in result.sentence
    assert "95% lower bound; floor 64.0 KiB/s" in result.sentence


def test_leak_that_starts_late_fails(tmp_path: Path) -> None:
    # the load runs 10-40 s: this leak starts in its last quarter and runs on through the drain
    result = _memory(tmp_path, leak(2 * MIB, start_s=32.0), name="eager")
    assert result.state == "fail", result.sentence


def test_late_leak_is_confirmed_by_the_second_half_trend_alone() -> None:
    memory = {"baseline_rss_bytes": BASE_RSS, "retained_growth_bytes": 30 * MIB, "slope_low_bytes_per_s": 0.0}
    assert check_memory("eager", memory, None, LIMITS).state == "warn"
    assert check_memory("eager", memory, 1.0 * MIB, LIMITS).state == "fail"


def test_one_step_after_the_warm_up_warns_without_a_trend(tmp_path: Path) -> None:
    result = _memory(tmp_path, step(20 * MIB, at_s=11.0))
    assert result.state == "warn", result.sentence
    assert "no steady rise confirms it" in result.sentence


def test_steady_growth_under_the_limit_warns_above_the_noise_floor() -> None:
    memory = {"baseline_rss_bytes": BASE_RSS, "retained_growth_bytes": 8 * MIB, "slope_low_bytes_per_s": 0.3 * MIB}
    result = check_memory("lazy", memory, None, LIMITS)
    assert result.state == "warn"
    assert "rising steadily" in result.sentence
    small = {**memory, "retained_growth_bytes": 2 * MIB}
    assert check_memory("lazy", small, None, LIMITS).state == "pass"


def test_the_relative_floor_raises_the_limit_of_a_big_process() -> None:
    memory = {"baseline_rss_bytes": 400 * MIB, "retained_growth_bytes": 60 * MIB, "slope_low_bytes_per_s": 1 * MIB}
    result = check_memory("big", memory, None, LIMITS)
    assert result.state == "warn"  # 60 MiB is under 25% of 400 MiB
    assert "limit 100.0 MiB = 25% of its 400.0 MiB baseline" in result.sentence
    assert check_memory("big", memory, None, replace(LIMITS, memory_growth_share=0.1)).state == "fail"


def test_a_profiled_target_is_judged_on_traced_memory(tmp_path: Path) -> None:
    # under the tracemalloc probe, snapshots at phase boundaries lift RSS in steps that never come back down
    snapshots = step(11 * MIB, at_s=10.0)
    run = CraftedRun(
        rss={"lazy": lambda t: snapshots(t) + (8 * MIB if t >= 40.0 else 0.0) + 0.2 * MIB * max(0.0, t - 10.0)},
        traced={"lazy": flat(noise_bytes=256 * 1024)},
        streams=list(slow_readers("lazy", 4)),
    )
    folder = run.write(tmp_path / "profiled")
    assert _memory_of(gate(folder, GateOptions())).sentence.startswith("lazy: traced memory grew ")
    assert _memory_of(gate(folder, GateOptions())).state == "pass"
    leaking = replace(run, traced={"lazy": leak(MIB, start_s=10.0)})
    result = _memory_of(gate(leaking.write(tmp_path / "leaking"), GateOptions()))
    assert result.state == "fail", result.sentence
    assert result.sentence.startswith("lazy: traced memory grew ")


def _memory_of(verdict: GateVerdict) -> CheckResult:
    (result,) = [result for result in verdict.results if result.check == "memory"]
    return result


def test_memory_without_samples_warns_and_says_why() -> None:
    result = check_memory("remote", {"available": False, "reason": "no RSS samples for remote"}, None, LIMITS)
    assert (result.state, result.sentence) == ("warn", "remote: not judged: no RSS samples for remote")


# -- upstream streams and cancellation -----------------------------------------------------------------------------
def _streams_run(tmp_path: Path, latencies: dict[str, list[float | None]]) -> GateVerdict:
    streams = [stream for name, values in latencies.items() for stream in leaving_streams(name, values)]
    run = CraftedRun(rss={name: flat() for name in latencies}, streams=streams)
    return gate(run.write(tmp_path), GateOptions())


def _state(verdict: GateVerdict, target: str, check: str) -> CheckResult:
    (result,) = [r for r in verdict.results if r.target == target and r.check == check]
    return result


def test_one_upstream_stream_left_open_after_the_drain_fails(tmp_path: Path) -> None:
    verdict = _streams_run(tmp_path, {"lazy": [0.01] * 20, "leaky": [0.01] * 19 + [None]})
    assert _state(verdict, "lazy", "leaked_streams").state == "pass"
    leaked = _state(verdict, "leaky", "leaked_streams")
    assert leaked.state == "fail"
    assert leaked.sentence == "leaky: 1 upstream streams still open after the drain with no client (limit 0)"
    assert verdict.exit_code == 1


def test_cancellation_latency_and_tokens_after_leave_against_their_limits(tmp_path: Path) -> None:
    verdict = _streams_run(tmp_path, {"quick": [0.01] * 20, "slowish": [0.8] * 20, "slow": [3.0] * 20})
    assert _state(verdict, "quick", "cancel_latency").state == "pass"
    assert _state(verdict, "slowish", "cancel_latency").state == "warn"
    slow = _state(verdict, "slow", "cancel_latency")
    assert slow.state == "fail"
    assert "p99 3000 ms from a client leaving to its upstream closing" in slow.sentence
    assert "(limit 2000 ms)" in slow.sentence
    assert _state(verdict, "quick", "tokens_after_leave").state == "pass"
    after = _state(verdict, "slow", "tokens_after_leave")
    assert after.state == "fail"
    assert "produced after their clients left (limit 20.0%)" in after.sentence


def test_streams_that_never_closed_upstream_fail_the_latency_check() -> None:
    cancellation = {"left_streams": 10, "never_closed": 3, "latency_p99_ms": 5.0}
    result = check_cancel_latency("eager", cancellation, LIMITS)
    assert result.state == "fail"
    assert "3 of 10 streams whose client left never closed upstream" in result.sentence


def test_no_leaving_client_is_not_judged_but_says_so() -> None:
    empty = {"left_streams": 0, "never_closed": 0, "latency_p99_ms": None, "tokens_after_leave_share": None}
    assert check_cancel_latency("lazy", empty, LIMITS).state == "warn"
    assert "not judged" in check_tokens_after_leave("lazy", empty, LIMITS).sentence
    assert check_leaked_streams("lazy", {"available": False, "reason": "x"}, LIMITS).state == "warn"


def test_leaked_stream_limit_can_be_loosened() -> None:
    upstream = {"basis": "stream ids", "orphans_at_end": 2}
    assert check_leaked_streams("eager", upstream, LIMITS).state == "fail"
    assert check_leaked_streams("eager", upstream, replace(LIMITS, leaked_streams=2)).state == "pass"


# -- positive controls, targets, exit codes -----------------------------------------------------------------------
def _control_run(tmp_path: Path) -> Path:
    streams = [*leaving_streams("eager", [None] * 10), *leaving_streams("lazy", [0.01] * 10)]
    run = CraftedRun(
        rss={"upstream": flat(), "eager": leak(MIB, start_s=10.0), "lazy": flat()},
        roles={"upstream": "upstream"},
        streams=streams,
    )
    return run.write(tmp_path)


def test_positive_control_passes_the_gate_by_failing(tmp_path: Path) -> None:
    folder = _control_run(tmp_path)
    assert gate(folder, GateOptions()).exit_code == 1
    verdict = gate(folder, GateOptions(expect_fail=("eager",)))
    assert verdict.exit_code == 0
    eager = next(target for target in verdict.targets if target.target == "eager")
    assert eager.failed
    assert eager.ok
    assert "as expected" in eager.control_sentence
    assert [target.target for target in verdict.targets] == ["eager", "lazy"]  # not the upstream


def test_positive_control_that_passes_fails_the_gate_and_says_so(tmp_path: Path) -> None:
    verdict = gate(_control_run(tmp_path), GateOptions(targets=("lazy",), expect_fail=("lazy",)))
    assert verdict.exit_code == 1
    (lazy,) = verdict.targets
    assert "expected to fail (positive control) but passed every check" in lazy.control_sentence


def test_target_selection_and_unknown_names(tmp_path: Path) -> None:
    folder = _control_run(tmp_path)
    assert {r.target for r in gate(folder, GateOptions(targets=("lazy",))).results} == {"lazy"}
    with pytest.raises(UsageError, match=r"--target names 'nope', which is not in the run: expected one of"):
        gate(folder, GateOptions(targets=("nope",)))
    with pytest.raises(UsageError, match=r"--expect-fail names 'ghost'"):
        gate(folder, GateOptions(expect_fail=("ghost",)))


def test_gate_writes_summary_json_and_refuses_a_missing_folder(tmp_path: Path) -> None:
    folder = _control_run(tmp_path)
    gate(folder, GateOptions())
    assert json.loads((folder / SUMMARY).read_text())["format"] == 1
    with pytest.raises(RunFolderError) as caught:
        gate(tmp_path / "missing", GateOptions())
    assert caught.value.exit_code == 2


# -- baselines -----------------------------------------------------------------------------------------------------
def test_regression_against_a_saved_baseline(tmp_path: Path) -> None:
    before = CraftedRun(rss={"lazy": leak(0.05 * MIB, start_s=10.0)}, streams=list(slow_readers("lazy", 4)))
    after = CraftedRun(rss={"lazy": leak(0.4 * MIB, start_s=10.0)}, streams=list(slow_readers("lazy", 4)))
    baseline = tmp_path / "baseline.json"
    gate(before.write(tmp_path / "a"), GateOptions(save_baseline=baseline))
    assert read_baseline(baseline)["kind"] == "stream-harness gate baseline"
    same = gate(before.write(tmp_path / "b"), GateOptions(baseline=baseline))
    assert _state(same, "lazy", "regression").state == "pass"
    worse = gate(after.write(tmp_path / "c"), GateOptions(baseline=baseline))
    result = _state(worse, "lazy", "regression")
    assert result.state == "fail"
    assert result.sentence.startswith("lazy: ")
    assert "retained_growth_bytes rose from " in result.sentence
    assert "tolerance 25%+4.0 MiB" in result.sentence
    assert _state(worse, "lazy", "memory").state != "fail"  # under the memory limit: only the baseline catches it


def test_regression_tolerance_is_the_larger_of_share_and_amount() -> None:
    tolerance = (Tolerance("cancel_latency_p99_ms", 0.5, 100.0),)
    old = {"cancel_latency_p99_ms": 10.0}
    assert check_regression("x", {"cancel_latency_p99_ms": 105.0}, old, tolerance).state == "pass"
    assert check_regression("x", {"cancel_latency_p99_ms": 115.0}, old, tolerance).state == "fail"
    big = {"cancel_latency_p99_ms": 1000.0}
    assert check_regression("x", {"cancel_latency_p99_ms": 1400.0}, big, tolerance).state == "pass"
    assert check_regression("x", {"cancel_latency_p99_ms": 1600.0}, big, tolerance).state == "fail"
    strict = (Tolerance("orphans_at_end"),)
    assert check_regression("x", {"orphans_at_end": 1}, {"orphans_at_end": 0}, strict).state == "fail"
    assert check_regression("x", {"orphans_at_end": 1}, None, strict).state == "warn"


def test_a_summary_json_serves_as_a_baseline(tmp_path: Path) -> None:
    folder = _control_run(tmp_path)
    gate(folder, GateOptions())
    summary = json.loads((folder / SUMMARY).read_text())
    verdict = judge(summary, GateOptions(expect_fail=("eager",)), baseline=read_baseline(folder / SUMMARY))
    assert {r.state for r in verdict.results if r.check == "regression"} == {"pass"}


def test_unreadable_baseline_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="is not readable JSON"):
        read_baseline(bad)
    with pytest.raises(UsageError, match="does not exist"):
        read_baseline(tmp_path / "none.json")
