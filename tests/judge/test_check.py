"""The Check record: what summary.json stores, read back the same; its phrase; a bad state is refused."""

from __future__ import annotations

import pytest

from harness.judge.check import Check, format_figure
from harness.judge.limits import Limits
from harness.judge.table import verdict_lines

CHECK = Check(
    "eager", "cancel_latency", "fail", 3900.0, 2000.0, "ms", "p99 3900 ms ... (limit 2000 ms)", {"left_streams": 9}
)


def test_a_check_reads_back_as_stored_with_its_phrase() -> None:
    stored = CHECK.to_dict()
    assert stored["phrase"] == "3.9 s, limit 2.0 s"
    assert Check.from_dict(stored) == CHECK
    assert CHECK.label == "eager cancel_latency"
    with pytest.raises(ValueError, match="a check's state must be one of pass, warn, fail, not judged, but got 'n/a'"):
        Check.from_dict({**stored, "state": "n/a"})


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (16 * 2**20, "bytes", "16.0 MiB"),
        (2**20, "bytes_per_1000_requests", "1.0 MiB per 1,000 requests"),
        (957.1, "per_1000_connections", "957.1 per 1,000 connections"),
        (120.0, "ms", "120 ms"),
        (14.0, "s", "14.0 s"),
        (0.052, "share", "5.2%"),
    ],
)
def test_figures_in_their_units(value: float, unit: str, text: str) -> None:
    assert format_figure(value, unit) == text


def test_the_verdict_table_is_one_line_per_check_then_the_judgement() -> None:
    blocked = Check("run", "run_complete", "not judged", None, 1.0, "state", "not judged: killed", required=True)
    lines = verdict_lines([blocked, CHECK])
    assert lines == [
        "NOT JUDGED run run_complete: not judged: killed",
        "FAIL       eager cancel_latency: p99 3900 ms ... (limit 2000 ms)",
        "verdict: NOT JUDGEABLE (1 blocking)",
    ]
    summary = {"checks": [CHECK.to_dict()], "judgement": {"state": "fail", "reasons": []}}
    assert verdict_lines(summary) == [lines[1], "verdict: FAIL"]


def test_limits_that_make_a_check_impossible_are_refused() -> None:
    Limits().check_order()
    with pytest.raises(ValueError, match=r"after_leave_warn_share \(0.5\) must not be above after_leave_share \(0.2\)"):
        Limits(after_leave_warn_share=0.5).check_order()
    with pytest.raises(ValueError, match="leaked_streams must not be negative, but got -1"):
        Limits(leaked_streams=-1).check_order()
