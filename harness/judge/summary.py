"""summary.json: the analysis's figures with the run's checks, written once per analysis of a run folder.

``summarise(run, limits)`` returns the dict; ``write_summary(folder, limits)`` analyses the folder, writes
summary.json atomically and returns the dict. The report, the gate and the terminal read the checks from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.analyse.analysis import SUMMARY, analyse_run
from harness.analyse.run_data import RunData, load_run
from harness.judge.judgement import judge_summary, judgement
from harness.judge.limits import Limits

__all__ = ["SUMMARY", "summarise", "write_summary", "write_summary_of"]


def summarise(run: RunData, limits: Limits | None = None) -> dict[str, Any]:
    """The figures of ``run`` and, under ``checks`` and ``judgement``, every check of them."""
    limits = limits or Limits()
    summary = analyse_run(run, churn_rounds=limits.churn_rounds)
    checks = judge_summary(summary, limits)
    summary["checks"] = [check.to_dict() for check in checks]
    summary["judgement"] = judgement(checks)
    return summary


def write_summary_of(folder: Path, summary: dict[str, Any]) -> None:
    aside = folder / f".{SUMMARY}.tmp"
    aside.write_text(json.dumps(summary, indent=2) + "\n")
    aside.replace(folder / SUMMARY)


def write_summary(folder: Path, limits: Limits | None = None) -> dict[str, Any]:
    """Analyse and judge the run folder at ``folder``, write its summary.json and return it."""
    summary = summarise(load_run(folder), limits)
    write_summary_of(folder, summary)
    return summary
