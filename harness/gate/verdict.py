"""The gate's verdict: the judge's checks of the chosen targets, positive controls, and the exit code.

A target declared expected to fail is a positive control: it lets the gate pass by failing a check, and fails the
gate if it passes them all. A check that blocks judgement (the run unfinished, a target that delivered no token, a
figure the run should have given) makes the whole run not judgeable, whatever else passed.

Exit codes: 0 pass, 1 fail, 2 bad input (UsageError, RunFolderError), 3 the run cannot be judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError
from harness.gate.baseline import baseline_headline
from harness.judge.check import Check, State
from harness.judge.judgement import judge_summary
from harness.judge.limits import Limits
from harness.judge.regression import check_regression

__all__ = ["EXIT_FAIL", "EXIT_NOT_JUDGEABLE", "EXIT_PASS", "GateVerdict", "TargetVerdict", "gate_verdict"]

EXIT_PASS, EXIT_FAIL, EXIT_NOT_JUDGEABLE = 0, 1, 3


@dataclass(frozen=True, slots=True)
class TargetVerdict:
    target: str
    results: tuple[Check, ...]
    expect_fail: bool = False
    """A positive control: the gate wants it to fail a check."""

    @property
    def failed(self) -> bool:
        return any(result.state == "fail" for result in self.results)

    @property
    def ok(self) -> bool:
        """Whether this target lets the gate pass."""
        return self.failed if self.expect_fail else not self.failed

    @property
    def control_sentence(self) -> str:
        """For a positive control: whether it did its job, in one sentence."""
        failed = [result.check for result in self.results if result.state == "fail"]
        if failed:
            return f"expected to fail (positive control) and failed {', '.join(failed)}: as expected"
        return "expected to fail (positive control) but passed every check: the gate could not tell it from a good one"


@dataclass(frozen=True, slots=True)
class GateVerdict:
    run_path: str
    run_checks: tuple[Check, ...]
    """The checks on the run itself and on the upstream's life."""
    targets: tuple[TargetVerdict, ...]
    notes: tuple[str, ...] = ()

    @property
    def results(self) -> tuple[Check, ...]:
        return (*self.run_checks, *(result for target in self.targets for result in target.results))

    @property
    def blocking(self) -> tuple[Check, ...]:
        """Checks that make the run not judgeable."""
        return tuple(result for result in self.results if result.blocks_judgement)

    @property
    def judgeable(self) -> bool:
        return not self.blocking

    @property
    def passed(self) -> bool:
        run_failed = any(check.state == "fail" for check in self.run_checks)
        return self.judgeable and not run_failed and all(target.ok for target in self.targets)

    @property
    def exit_code(self) -> int:
        if not self.judgeable:
            return EXIT_NOT_JUDGEABLE
        return EXIT_PASS if self.passed else EXIT_FAIL

    def count(self, state: State) -> int:
        return sum(result.state == state for result in self.results)

    @property
    def headline(self) -> str:
        """'gate: FAIL (1 of 3 targets failed: eager; 2 warnings)' or 'gate: NOT JUDGEABLE (...)'."""
        if not self.judgeable:
            which = ", ".join(check.label for check in self.blocking)
            return f"gate: NOT JUDGEABLE (exit {EXIT_NOT_JUDGEABLE}: {which})"
        bad = [target.target for target in self.targets if not target.ok]
        bad += [check.target for check in self.run_checks if check.state == "fail" and check.target not in bad]
        warn = self.count("warn")
        detail = f"{len(bad)} of {len(self.targets)} targets failed: {', '.join(bad)}" if bad else "all targets ok"
        word = "PASS" if self.passed else "FAIL"
        return f"gate: {word} ({detail}; {warn} warning{'s' if warn != 1 else ''})"


def _judged_targets(summary: Mapping[str, Any], targets: Sequence[str], expect_fail: Sequence[str]) -> tuple[str, ...]:
    known: Mapping[str, Any] = summary.get("targets") or {}
    for flag, names in (("--target", targets), ("--expect-fail", expect_fail)):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise UsageError(
                f"{flag} names {unknown[0]!r}, which is not in the run: expected one of {', '.join(known) or 'none'}"
            )
    chosen = targets or tuple(name for name, target in known.items() if target.get("role") != "upstream")
    return tuple(dict.fromkeys([*chosen, *expect_fail]))


def gate_verdict(
    summary: Mapping[str, Any],
    limits: Limits,
    *,
    targets: Sequence[str] = (),
    expect_fail: Sequence[str] = (),
    baseline: Mapping[str, Any] | None = None,
) -> GateVerdict:
    """The gate's verdict on an analysed run (summary.json's figures). Pure: reads nothing, writes nothing."""
    checks = judge_summary(summary, limits)
    chosen = _judged_targets(summary, targets, expect_fail)
    roles = {name: (figures or {}).get("role") for name, figures in (summary.get("targets") or {}).items()}
    run_checks = tuple(
        check
        for check in checks
        if check.target not in roles or (roles[check.target] == "upstream" and check.target not in chosen)
    )
    verdicts = []
    for name in chosen:
        results = [check for check in checks if check.target == name]
        if baseline is not None:
            headline = (summary["targets"][name] or {}).get("headline") or {}
            results.append(check_regression(name, headline, baseline_headline(baseline, name), limits.tolerances))
        verdicts.append(TargetVerdict(name, tuple(results), expect_fail=name in expect_fail))
    run = summary.get("run") or {}
    notes = tuple(str(note) for note in summary.get("notes") or [])
    return GateVerdict(str(run.get("path", "")), run_checks, tuple(verdicts), notes)
