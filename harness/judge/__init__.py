"""Every check of a run, computed once: state, deciding figure, limit, one sentence (contract 5).

``summarise``/``write_summary`` add the checks to the analysis's figures (summary.json); ``judge_summary`` judges
figures already analysed; ``verdict_lines`` formats them for the terminal; ``Limits`` holds every default. Names
load lazily, so reading the limits (the gate's flags, at Locust's start) does not import pandas.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.judge.check import RUN, Check, State
    from harness.judge.judgement import judge_summary, judgement
    from harness.judge.limits import Limits
    from harness.judge.summary import summarise, write_summary
    from harness.judge.table import check_line, verdict_lines

__all__ = [
    "RUN",
    "Check",
    "Limits",
    "State",
    "check_line",
    "judge_summary",
    "judgement",
    "summarise",
    "verdict_lines",
    "write_summary",
]

_HOMES = {
    "RUN": "check",
    "Check": "check",
    "State": "check",
    "Limits": "limits",
    "check_line": "table",
    "verdict_lines": "table",
    "judge_summary": "judgement",
    "judgement": "judgement",
    "summarise": "summary",
    "write_summary": "summary",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'harness.judge' has no attribute {name!r}")
    return getattr(import_module(f"harness.judge.{_HOMES[name]}"), name)
