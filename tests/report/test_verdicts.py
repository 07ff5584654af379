"""The checks as the report shows them: the judge's, read from summary.json, never recomputed or reformatted."""

from __future__ import annotations

from typing import Any

import pytest

from harness.report.verdicts import checks_of, glance


def _check(target: str, check: str, state: str, sentence: str, **extra: Any) -> dict[str, Any]:
    return {
        "target": target,
        "check": check,
        "state": state,
        "figure": None,
        "limit": None,
        "unit": "ms",
        "sentence": sentence,
        **extra,
    }


SENTENCE = "p99 3900 ms from a client leaving to its upstream closing (limit 2000 ms); over 26 left streams"


def test_checks_are_the_judges_words() -> None:
    summary = {
        "checks": [
            _check("run", "run_complete", "pass", "the run finished all 5 phases"),
            _check("eager", "cancel_latency", "fail", SENTENCE, supporting={"left_streams": 26}),
            _check("lazy", "cancel_latency", "pass", "p99 2 ms (limit 2000 ms)", phrase="p99 2 ms, limit 2 s"),
        ]
    }
    run, eager, lazy = checks_of(summary)
    assert (run.target, run.state) == ("run", "pass")
    assert eager.phrase == "p99 3900 ms from a client leaving to its upstream closing (limit 2000 ms)"
    assert eager.sentence == SENTENCE
    assert eager.supporting == ("left streams: 26",)
    assert lazy.phrase == "p99 2 ms, limit 2 s"  # the judge's own phrase when summary.json carries one
    with pytest.raises(ValueError, match="state"):
        checks_of({"checks": [_check("eager", "cancel_latency", "n/a", SENTENCE)]})


def test_glance_puts_failures_first_and_sets_aside_what_nobody_was_judged_on() -> None:
    checks = checks_of(
        {
            "checks": [
                _check("run", "run_complete", "pass", "finished", unit="state"),
                _check("upstream", "target_alive", "pass", "alive", unit="state"),
                _check("eager", "target_alive", "pass", "alive", unit="state"),
                _check("lazy", "target_alive", "pass", "alive", unit="state"),
                _check("eager", "stalled_clients", "not judged", "not judged: no client stalled"),
                _check("eager", "cancel_latency", "fail", SENTENCE),
                _check("lazy", "cancel_latency", "pass", "p99 2 ms (limit 2000 ms)"),
            ]
        }
    )
    seen = glance(checks)
    assert seen.targets == ["eager", "lazy"]  # the upstream has no judged figure: a yes/no line instead
    assert [(c.target, c.check) for c in seen.yes_no] == [("upstream", "target_alive")]
    assert [row.check for row in seen.rows] == ["cancel_latency", "target_alive"]  # the failure first
    assert [row.check for row in seen.not_judged] == ["stalled_clients"]
    assert seen.not_judged[0].cells[1] is None  # lazy has no such check
