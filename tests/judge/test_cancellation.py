"""The cancellation checks on crafted runs with known latencies, and as pure functions of figures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness.analyse.analysis import analyse_run
from harness.analyse.run_data import load_run
from harness.judge.cancellation import cancellation_checks
from harness.judge.check import Check
from harness.judge.judgement import judge_summary
from harness.judge.limits import Limits
from tests.runfolders import CraftedRun, flat, leaving_streams

LIMITS = Limits()


def _checks(tmp_path: Path, latencies: dict[str, list[float | None]]) -> dict[tuple[str, str], Check]:
    streams = [stream for name, values in latencies.items() for stream in leaving_streams(name, values)]
    folder = CraftedRun(rss={name: flat() for name in latencies}, streams=streams).write(tmp_path)
    return {(c.target, c.check): c for c in judge_summary(analyse_run(load_run(folder)))}


def test_one_upstream_stream_left_open_after_the_drain_fails(tmp_path: Path) -> None:
    checks = _checks(tmp_path, {"lazy": [0.01] * 20, "leaky": [0.01] * 19 + [None]})
    assert checks[("lazy", "leaked_streams")].state == "pass"
    leaked = checks[("leaky", "leaked_streams")]
    assert leaked.state == "fail"
    assert leaked.sentence.startswith("1 upstream stream still open after the drain with no client (limit 0); ")
    assert (leaked.figure, leaked.limit) == (1.0, 0.0)


def test_latency_and_tokens_after_leave_against_their_limits(tmp_path: Path) -> None:
    checks = _checks(tmp_path, {"quick": [0.01] * 20, "slowish": [0.8] * 20, "slow": [3.0] * 20})
    assert checks[("quick", "cancel_latency")].state == "pass"
    slowish = checks[("slowish", "cancel_latency")]
    assert slowish.state == "warn"
    assert slowish.sentence.startswith("p99 800 ms from a client leaving to its upstream closing (warn above 500 ms")
    slow = checks[("slow", "cancel_latency")]
    assert slow.state == "fail"
    assert slow.sentence.startswith("p99 3000 ms from a client leaving to its upstream closing (limit 2000 ms); ")
    assert checks[("quick", "tokens_after_leave")].state == "pass"
    after = checks[("slow", "tokens_after_leave")]
    assert after.state == "fail"
    assert "of tokens produced over 0.5 s after their clients left (limit 20.0%); " in after.sentence
    # a relay that reacts within the allowance makes nothing for nobody, however many tokens its latency costs
    assert checks[("slowish", "tokens_after_leave")].figure < checks[("slow", "tokens_after_leave")].figure
    assert checks[("quick", "tokens_after_leave")].figure == 0.0


def _figures(**cancellation: object) -> dict[str, object]:
    return {
        "upstream": {"available": True, "basis": "stream ids", "orphans_at_end": 0, "client_streams": 10},
        "cancellation": {"available": True, **cancellation},
        "clients": {"available": True, "outcomes": {"left": 10}},
    }


def test_streams_that_never_closed_upstream_fail_the_latency_check() -> None:
    figures = _figures(left_streams=10, never_closed=3, latency_p99_ms=5.0, tokens_after_leave_share=0.0)
    latency = cancellation_checks("eager", figures, LIMITS)[1]
    assert latency.state == "fail"
    assert latency.sentence.startswith("3 of 10 streams whose client left never closed upstream")


def test_not_judged_names_the_true_reason() -> None:
    nobody = {**_figures(left_streams=0), "clients": {"available": True, "outcomes": {"completed": 9}}}
    latency = cancellation_checks("lazy", nobody, LIMITS)[1]
    assert latency.sentence == "not judged: no client left a stream early in this run"
    unmatched = {
        **_figures(),
        "cancellation": {"available": False, "reason": "no stream id of this target reached the upstream"},
    }
    latency = cancellation_checks("opaque", unmatched, LIMITS)[1]
    assert latency.state == "not judged"
    assert latency.sentence == (
        "not judged: 10 clients left early, but no stream id of this target reached the upstream"
    )
    missing = cancellation_checks("gone", {"upstream": {"available": False, "reason": "no upstream data"}}, LIMITS)
    assert {check.state for check in missing} == {"not judged"}
    assert all(check.blocks_judgement for check in missing)


def test_leaked_stream_limit_can_be_loosened() -> None:
    figures = _figures(left_streams=0)
    figures["upstream"] = {**figures["upstream"], "orphans_at_end": 2}  # type: ignore[dict-item]
    assert cancellation_checks("eager", figures, LIMITS)[0].state == "fail"
    assert cancellation_checks("eager", figures, replace(LIMITS, leaked_streams=2))[0].state == "pass"
