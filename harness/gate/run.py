"""``harness gate`` and ``locust --gate``: analyse a run folder, judge it, print, write JUnit/Markdown, exit.

``gate(folder, options)`` reads the folder (refusing corrupt tables or meta.json in one line, before anything is
written), writes summary.json with the gate's checks, and returns the ``GateVerdict``. ``run_gate`` prints a line
per check and returns the exit code; ``gate_run`` and ``judge_locust_run`` are the Locust plugin's entry points.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from harness.analyse.run_data import load_run, verify_tables
from harness.errors import HarnessError, RunFolderError
from harness.gate.baseline import read_baseline, write_baseline
from harness.gate.config import GateOptions, options_from_locust
from harness.gate.verdict import GateVerdict, gate_verdict
from harness.judge.summary import summarise, write_summary_of

__all__ = ["gate", "gate_run", "judge_locust_run", "run_gate"]


def gate(folder: Path, options: GateOptions) -> GateVerdict:
    """Analyse the run folder (writing its summary.json, as ``harness report`` does) and judge it."""
    if not folder.is_dir():
        raise RunFolderError(f"RUN_DIR must be a run folder, but {str(folder)!r} is not a directory")
    baseline = read_baseline(options.baseline) if options.baseline else None
    run = load_run(folder)
    verify_tables(run)
    summary = summarise(run, options.limits)
    verdict = gate_verdict(
        summary, options.limits, targets=options.targets, expect_fail=options.expect_fail, baseline=baseline
    )
    if options.write_summary:
        write_summary_of(folder, summary)
    if options.save_baseline:
        write_baseline(summary, options.save_baseline)
    return verdict


def run_gate(folder: Path, options: GateOptions, stream: TextIO | None = None) -> int:
    """Judge, print a line per check, write the JUnit and Markdown outputs; return the exit code (0, 1, 3)."""
    from harness.gate.output import console_lines, write_junit, write_markdown

    out = stream or sys.stdout
    verdict = gate(folder, options)
    for line in console_lines(verdict):
        out.write(line + "\n")
    if options.junit:
        write_junit(verdict, options.junit)
    write_markdown(verdict, options.markdown)
    out.flush()
    return verdict.exit_code


def gate_run(folder: Path, options: Any, stream: TextIO | None = None) -> int:
    """The Locust plugin's entry: judge ``folder`` with Locust's parsed ``--gate*`` options; 0, 1, 2 or 3.

    Errors do not escape: one line goes to stderr and their exit code is returned, for process_exit_code.
    """
    try:
        return run_gate(folder, options_from_locust(options), stream)
    except HarnessError as error:
        sys.stderr.write(f"harness gate: error: {error}\n")
        return error.exit_code


def judge_locust_run(environment: Any, folder: Path | None) -> int:
    """At Locust's ``quitting``, with ``--gate``: judge the finished run folder and set Locust's exit code.

    A failing gate (1), bad gate input (2) or a run that cannot be judged (3: interrupted, killed, a dead target)
    becomes ``environment.process_exit_code``, unless Locust already chose a higher one; a passing gate leaves
    Locust's own decision alone. Returns the gate's code.
    """
    if folder is None:
        sys.stderr.write("harness gate: error: no run folder to judge (the run did not start)\n")
        code = 2
    else:
        code = gate_run(folder, environment.parsed_options)
    if code:
        environment.process_exit_code = max(code, environment.process_exit_code or 0)
    return code
