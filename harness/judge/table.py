"""The verdict table the terminal prints at the end of a run (contract 8: the plugin prints, this formats).

Each line is ``STATE  target check: sentence``, the same words as summary.json, the report and the gate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.judge.check import Check

__all__ = ["check_line", "verdict_lines"]

_WIDTH = len("NOT JUDGED")


def check_line(check: Check, label: str | None = None) -> str:
    """``FAIL       eager backlog_slow_readers: 120.0 MiB of traced memory held ...``."""
    return f"{(label or check.state.upper()):<{_WIDTH}} {check.label}: {check.sentence}"


def verdict_lines(source: Mapping[str, Any] | Iterable[Check]) -> list[str]:
    """The verdict table of a summary (summary.json's dict) or of checks: one line per check, then the judgement."""
    if isinstance(source, Mapping):
        checks = [Check.from_dict(item) for item in source.get("checks") or []]
        verdict = source.get("judgement") or {}
    else:
        from harness.judge.judgement import judgement

        checks = list(source)
        verdict = judgement(checks)
    lines = [check_line(check) for check in checks]
    state = str(verdict.get("state") or "not judgeable")
    lines.append(
        f"verdict: {state.upper()}"
        + (f" ({len(verdict.get('reasons') or [])} blocking)" if state == "not judgeable" else "")
    )
    return lines
