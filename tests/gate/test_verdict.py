"""The gate's verdict on crafted runs: positive controls, target selection, baselines, and the judge's words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import RunFolderError, UsageError
from harness.gate.baseline import read_baseline
from harness.gate.config import GateOptions
from harness.gate.run import gate
from harness.gate.verdict import GateVerdict, gate_verdict
from harness.judge.check import Check
from harness.judge.limits import Limits, Tolerance
from harness.judge.regression import check_regression
from harness.judge.summary import SUMMARY
from tests.runfolders import CraftedRun, flat, leaving_streams


def _control_run(tmp_path: Path, lazy_latency_s: float = 0.01) -> Path:
    streams = [*leaving_streams("eager", [None] * 10), *leaving_streams("lazy", [lazy_latency_s] * 10)]
    run = CraftedRun(
        rss={"upstream": flat(), "eager": flat(), "lazy": flat()},
        roles={"upstream": "upstream"},
        streams=streams,
    )
    return run.write(tmp_path)


def _result(verdict: GateVerdict, target: str, check: str) -> Check:
    (result,) = [r for r in verdict.results if r.target == target and r.check == check]
    return result


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
    assert {check.target for check in verdict.run_checks} == {"run", "upstream"}


def test_positive_control_that_passes_fails_the_gate_and_says_so(tmp_path: Path) -> None:
    verdict = gate(_control_run(tmp_path), GateOptions(targets=("lazy",), expect_fail=("lazy",)))
    assert verdict.exit_code == 1
    (lazy,) = verdict.targets
    assert "expected to fail (positive control) but passed every check" in lazy.control_sentence


def test_target_selection_and_unknown_names(tmp_path: Path) -> None:
    folder = _control_run(tmp_path)
    assert {t.target for t in gate(folder, GateOptions(targets=("lazy",))).targets} == {"lazy"}
    with pytest.raises(UsageError, match=r"--target names 'nope', which is not in the run: expected one of"):
        gate(folder, GateOptions(targets=("nope",)))
    with pytest.raises(UsageError, match=r"--expect-fail names 'ghost'"):
        gate(folder, GateOptions(expect_fail=("ghost",)))


def test_the_gate_writes_the_checks_it_judged_into_summary_json(tmp_path: Path) -> None:
    folder = _control_run(tmp_path)
    verdict = gate(folder, GateOptions())
    summary = json.loads((folder / SUMMARY).read_text())
    assert summary["format"] == 2
    stored = [Check.from_dict(item) for item in summary["checks"]]
    assert stored == list(verdict.results)  # word for word, state for state
    assert summary["judgement"] == {"state": "fail", "reasons": []}
    with pytest.raises(RunFolderError) as caught:
        gate(tmp_path / "missing", GateOptions())
    assert caught.value.exit_code == 2


def test_regression_against_a_saved_baseline(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    gate(_control_run(tmp_path / "a"), GateOptions(save_baseline=baseline))
    assert read_baseline(baseline)["kind"] == "stream-harness gate baseline"
    same = gate(_control_run(tmp_path / "b"), GateOptions(baseline=baseline))
    assert _result(same, "lazy", "regression").state == "pass"
    worse = gate(_control_run(tmp_path / "c", lazy_latency_s=0.4), GateOptions(baseline=baseline))
    result = _result(worse, "lazy", "regression")
    assert result.state == "fail"
    assert "cancel_latency_p99_ms rose from 10 ms to 400 ms (+390 ms; tolerance 50%+100 ms = 100 ms)" in result.sentence
    assert _result(worse, "lazy", "cancel_latency").state == "pass"  # under the limit: only the baseline catches it


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
    assert check_regression("x", {"orphans_at_end": 1}, None, strict).state == "not judged"


def test_a_summary_json_serves_as_a_baseline(tmp_path: Path) -> None:
    folder = _control_run(tmp_path)
    gate(folder, GateOptions())
    summary = json.loads((folder / SUMMARY).read_text())
    verdict = gate_verdict(summary, Limits(), expect_fail=("eager",), baseline=read_baseline(folder / SUMMARY))
    assert {r.state for r in verdict.results if r.check == "regression"} == {"pass"}


def test_unreadable_baseline_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="is not readable JSON"):
        read_baseline(bad)
    with pytest.raises(UsageError, match="does not exist"):
        read_baseline(tmp_path / "none.json")


def test_with_configured_limits_the_report_says_what_the_gate_says(tmp_path: Path) -> None:
    from harness.gate.config import configured_limits, load_pyproject
    from harness.report.html import write_report

    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.harness.gate]\nleaked_streams = 20\ncancel_p99 = "1h"\n')
    folder = _control_run(tmp_path / "runs")
    write_report(folder, configured_limits(str(config)))
    stored = [Check.from_dict(item) for item in json.loads((folder / SUMMARY).read_text())["checks"]]
    limits = configured_limits(str(config))
    assert limits == Limits(leaked_streams=20, cancel_p99_ms=3_600_000.0)
    assert load_pyproject(config, required=True).limits == {"leaked_streams": 20, "cancel_p99_ms": 3_600_000.0}
    verdict = gate(folder, GateOptions(limits=limits, write_summary=False))
    assert stored == list(verdict.results)
    (leaked,) = [c for c in stored if c.target == "eager" and c.check == "leaked_streams"]
    assert leaked.state == "pass"  # 10 open, 20 allowed: the configured limit, in the report too
