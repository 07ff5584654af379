"""The checks as the report shows them: taken from summary.json as the judge wrote them, never recomputed."""

from __future__ import annotations

from typing import Any

from harness.report.verdicts import CheckView, checks_of, headline_rows


def _summary(**extra: Any) -> dict[str, Any]:
    return {
        "targets": {
            "upstream": {"role": "upstream", "verdicts": {}},
            "eager": {
                "role": "relay",
                "memory": {"available": True, "growth_bytes": 3 * 2**20},
                "traced_memory": {"available": True, "growth_bytes": 2**20},
                "upstream": {"available": True, "orphans_at_end": 9, "orphan_stream_seconds": 28.0},
                "cancellation": {"available": True, "latency_p99_ms": 3900.0, "never_closed": 0},
                "verdicts": {
                    "back_pressure": {"state": "n/a", "reason": "no slow or stalled readers in this run"},
                    "cancellation": {"state": "fail", "reason": "p99 3900 ms"},
                },
            },
        },
        **extra,
    }


def test_checks_are_the_judges_words() -> None:
    # figure and limit are shown only through the judge's own phrase: the report formats neither
    checks = [
        {
            "target": "eager",
            "check": "cancellation",
            "state": "fail",
            "figure": 3900.0,
            "limit": 2000.0,
            "unit": "ms",
            "phrase": "p99 3.9 s, limit 2 s",
            "sentence": "p99 3.9 s from client leaving to upstream closing, limit 2 s",
            "supporting": {"left_streams": 26},
        }
    ]
    (view,) = checks_of(_summary(checks=checks))
    assert view == CheckView(
        "eager",
        "cancellation",
        "cancellation",
        "fail",
        "p99 3.9 s, limit 2 s",
        "p99 3.9 s from client leaving to upstream closing, limit 2 s",
        ("left streams 26",),
    )


def test_summaries_before_the_judge_show_their_verdicts_as_they_are() -> None:
    views = checks_of(_summary())
    assert [(v.target, v.check, v.state, v.sentence) for v in views] == [
        ("eager", "back_pressure", "not judged", "no slow or stalled readers in this run"),
        ("eager", "cancellation", "fail", "p99 3900 ms"),
    ]


def test_headline_shows_only_judged_figures_naming_the_series() -> None:
    summary = _summary()
    rows = headline_rows(summary, ["eager"], checks_of(summary))
    labels = [row.label for row in rows]
    assert not any("growth" in label for label in labels)  # back-pressure was not judged
    assert "cancellation latency p99" in labels
    judged_memory = _summary()
    judged_memory["targets"]["eager"]["verdicts"]["back_pressure"]["state"] = "pass"
    rows = headline_rows(judged_memory, ["eager"], checks_of(judged_memory))
    growth = next(row for row in rows if row.label.startswith("growth after warm-up"))
    assert growth.label == "growth after warm-up (traced memory)"
    assert growth.values == ["1.0 MiB"]  # the traced series, not RSS's 3 MiB
