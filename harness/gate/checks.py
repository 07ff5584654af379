"""The CI gate: each check a pure function of one target's figures and a limit, returning a state and a sentence.

    memory              RSS (traced memory under the probe) growth after the warm-up, confirmed two ways before
                        it fails (see ``check_memory``)
    leaked_streams      upstream streams still open after the drain with no client: strict, 1 fails by default
    cancel_latency      p99 from a client leaving to its upstream stream closing
    tokens_after_leave  share of the tokens the upstream produced after their clients had left
    regression          headline figures against a baseline, each within its tolerance (only with a baseline)

``judge(summary, options)`` applies the checks to the targets of an analysed run (summary.json) and returns a
``GateVerdict`` whose ``exit_code`` is 0 (pass) or 1 (fail). A target declared expected to fail is a positive
control: it passes the gate by failing a check, and fails the gate if it passes them all. ``gate(folder, options)``
analyses a run folder and judges it; ``gate_run`` is the Locust plugin's entry point.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TextIO

from harness.analyse.analysis import SUMMARY, analyse_run
from harness.analyse.memory import memory_figures
from harness.analyse.run_data import RunData, load_run
from harness.errors import HarnessError, RunFolderError, UsageError
from harness.gate.config import GateLimits, GateOptions, Tolerance, format_amount, options_from_locust
from harness.units import format_bytes

__all__ = [
    "CHECKS",
    "CheckResult",
    "GateVerdict",
    "TargetVerdict",
    "check_cancel_latency",
    "check_leaked_streams",
    "check_memory",
    "check_regression",
    "check_tokens_after_leave",
    "gate",
    "gate_run",
    "judge",
    "judge_locust_run",
    "late_trends",
    "read_baseline",
    "run_gate",
    "write_baseline",
]

State = Literal["pass", "warn", "fail"]
CHECKS = ("memory", "leaked_streams", "cancel_latency", "tokens_after_leave", "regression")
BASELINE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class CheckResult:
    target: str
    check: str
    state: State
    sentence: str
    """Starts with the target's name, names the figure and the limit: 'lazy: RSS grew 0.6 MiB ... (limit ...)'."""


def _result(target: str, check: str, state: State, text: str) -> CheckResult:
    return CheckResult(target, check, state, f"{target}: {text}")


def _rate(size_per_s: float) -> str:
    return f"{format_bytes(size_per_s)}/s"


# -- the checks ----------------------------------------------------------------------------------------------------
def check_memory(
    target: str,
    memory: Mapping[str, Any],
    late_slope_low_bytes_per_s: float | None,
    limits: GateLimits,
    measure: str = "RSS",
) -> CheckResult:
    """Fail only when memory growth after the warm-up is both large and steady.

    The level is the retained growth (median of the drain's last quarter minus the median of the warm-up's last
    quarter: warm-up spikes and steps are in the baseline, and a sawtooth's teeth cancel out). Its limit is the
    larger of an absolute floor and a share of the baseline. The trend confirms it: the 95% lower bound of the
    Theil-Sen slope, over the whole load or over its second half (a leak that starts late), must reach a rate
    floor. Large without a trend, or steady but under the limit (above a noise floor): warn.

    ``memory`` is summary.json's ``memory`` section (``measure`` "RSS") or, for a target under the tracemalloc
    probe, its ``traced_memory`` section (``measure`` "traced memory": snapshots inflate RSS, not the traced heap).
    """
    baseline_value = memory.get("baseline_rss_bytes", memory.get("baseline_traced_bytes"))
    if not memory.get("available", True) or baseline_value is None:
        return _result(target, "memory", "warn", f"not judged: {memory.get('reason', 'no memory samples')}")
    baseline = float(baseline_value)
    retained = memory.get("retained_growth_bytes")
    level = float(retained if retained is not None else memory["growth_bytes"])
    what = f"{measure} grew" if retained is not None else f"{measure} peaked"
    relative = limits.memory_growth_share * baseline
    limit = max(limits.memory_growth_bytes, relative)
    limit_text = f"limit {format_bytes(limit)}"
    if relative > limits.memory_growth_bytes:
        limit_text += f" = {limits.memory_growth_share:.0%} of its {format_bytes(baseline)} baseline"
    lows = [
        float(value) for value in (memory.get("slope_low_bytes_per_s"), late_slope_low_bytes_per_s) if value is not None
    ]
    low = max(lows) if lows else None
    rising = low is not None and low >= limits.memory_rate_bytes_per_s
    trend = (
        "no trend (too few samples in the load)"
        if low is None
        else f"trend at least {_rate(low)} (95% lower bound; floor {_rate(limits.memory_rate_bytes_per_s)})"
    )
    figure = f"{what} {format_bytes(level)} after warm-up"
    if level >= limit and rising:
        return _result(target, "memory", "fail", f"{figure} ({limit_text}); {trend}")
    if level >= limit:
        return _result(target, "memory", "warn", f"{figure} ({limit_text}) but no steady rise confirms it: {trend}")
    if rising and level >= limits.memory_min_bytes:
        return _result(
            target,
            "memory",
            "warn",
            f"{figure}, under the {limit_text} but rising steadily: {trend}",
        )
    return _result(target, "memory", "pass", f"{figure} ({limit_text})")


def check_leaked_streams(target: str, upstream: Mapping[str, Any], limits: GateLimits) -> CheckResult:
    """Upstream streams still open at the end of the drain whose client had left: more than the limit fails."""
    if not upstream.get("available", True):
        return _result(target, "leaked_streams", "warn", f"not judged: {upstream.get('reason', 'no upstream data')}")
    orphans = upstream.get("orphans_at_end")
    if orphans is None:
        return _result(
            target, "leaked_streams", "warn", f"not judged: no stream records or counts ({upstream.get('note', '')})"
        )
    basis = "" if upstream.get("basis") != "aggregate" else " (aggregate count: no upstream records to pair)"
    text = (
        f"{int(orphans)} upstream streams still open after the drain with no client"
        f"{basis} (limit {limits.leaked_streams})"
    )
    return _result(target, "leaked_streams", "fail" if orphans > limits.leaked_streams else "pass", text)


_NEVER_CLOSED_SHARE = 0.01
"""More left streams than this share never closed upstream: the true p99 is beyond the run, so it fails."""


def check_cancel_latency(target: str, cancellation: Mapping[str, Any], limits: GateLimits) -> CheckResult:
    """p99 of client leaving -> upstream closing, against the warn and fail limits."""
    if not cancellation.get("available", True):
        return _result(target, "cancel_latency", "warn", f"not judged: {cancellation.get('reason', 'no data')}")
    left = int(cancellation.get("left_streams") or 0)
    if left == 0:
        return _result(target, "cancel_latency", "warn", "not judged: no client left a stream early in this run")
    never = int(cancellation.get("never_closed") or 0)
    p99 = cancellation.get("latency_p99_ms")
    limit = f"limit {limits.cancel_p99_ms:.0f} ms"
    if never > _NEVER_CLOSED_SHARE * left:
        return _result(
            target,
            "cancel_latency",
            "fail",
            f"{never} of {left} streams whose client left never closed upstream, so the p99 is beyond the run "
            f"({limit})",
        )
    if p99 is None:
        return _result(target, "cancel_latency", "warn", f"not judged: no closed stream to time ({left} left)")
    text = f"p99 {p99:.0f} ms from a client leaving to its upstream closing, over {left} streams"
    if p99 > limits.cancel_p99_ms:
        return _result(target, "cancel_latency", "fail", f"{text} ({limit})")
    if p99 > limits.cancel_p99_warn_ms:
        return _result(target, "cancel_latency", "warn", f"{text} (warn above {limits.cancel_p99_warn_ms:.0f} ms)")
    return _result(target, "cancel_latency", "pass", f"{text} ({limit})")


def check_tokens_after_leave(target: str, cancellation: Mapping[str, Any], limits: GateLimits) -> CheckResult:
    """Share of produced tokens made after their client left, against the warn and fail limits."""
    if not cancellation.get("available", True):
        return _result(target, "tokens_after_leave", "warn", f"not judged: {cancellation.get('reason', 'no data')}")
    share = cancellation.get("tokens_after_leave_share")
    if share is None or not cancellation.get("left_streams"):
        return _result(target, "tokens_after_leave", "warn", "not judged: no client left a stream early in this run")
    after = float(cancellation.get("tokens_after_leave") or 0.0)
    produced = int(cancellation.get("tokens_produced") or 0)
    text = f"{share:.1%} of tokens ({after:.0f} of {produced}) produced after their clients left"
    if share > limits.after_leave_share:
        return _result(target, "tokens_after_leave", "fail", f"{text} (limit {limits.after_leave_share:.1%})")
    if share > limits.after_leave_warn_share:
        return _result(target, "tokens_after_leave", "warn", f"{text} (warn above {limits.after_leave_warn_share:.1%})")
    return _result(target, "tokens_after_leave", "pass", f"{text} (limit {limits.after_leave_share:.1%})")


def check_regression(
    target: str,
    headline: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    tolerances: tuple[Tolerance, ...],
) -> CheckResult:
    """Each toleranced headline figure may rise over its baseline value by its tolerance, no more."""
    if baseline is None:
        return _result(target, "regression", "warn", "not judged: the baseline has no figures for this target")
    rises: list[tuple[float, str]] = []
    compared = 0
    for tolerance in tolerances:
        old, new = baseline.get(tolerance.metric), headline.get(tolerance.metric)
        if old is None or new is None:
            continue
        compared += 1
        allowed = tolerance.allowed(float(old))
        rise = float(new) - float(old)
        if rise > allowed:
            metric = tolerance.metric
            rises.append(
                (
                    rise / allowed if allowed else float("inf"),
                    f"{metric} rose from {format_amount(metric, float(old))} to {format_amount(metric, float(new))} "
                    f"(+{format_amount(metric, rise)}; tolerance {tolerance} = {format_amount(metric, allowed)})",
                )
            )
    if not compared:
        return _result(target, "regression", "warn", "not judged: no figure is in both this run and the baseline")
    if rises:
        rises.sort(key=lambda item: -item[0])
        return _result(target, "regression", "fail", "; ".join(text for _, text in rises))
    return _result(
        target, "regression", "pass", f"none of {compared} figures rose beyond its tolerance over the baseline"
    )


# -- verdicts ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TargetVerdict:
    target: str
    results: tuple[CheckResult, ...]
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
            return f"{self.target}: expected to fail (positive control) and failed {', '.join(failed)}: as expected"
        return (
            f"{self.target}: expected to fail (positive control) but passed every check: the gate could not tell "
            "this target from a good one"
        )


@dataclass(frozen=True, slots=True)
class GateVerdict:
    run_path: str
    targets: tuple[TargetVerdict, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(target.ok for target in self.targets)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def results(self) -> tuple[CheckResult, ...]:
        return tuple(result for target in self.targets for result in target.results)

    def count(self, state: State) -> int:
        return sum(result.state == state for result in self.results)

    @property
    def headline(self) -> str:
        """'gate: FAIL (1 of 3 targets failed; 2 warnings)'."""
        bad = [target.target for target in self.targets if not target.ok]
        word = "PASS" if self.passed else "FAIL"
        warn = self.count("warn")
        detail = f"{len(bad)} of {len(self.targets)} targets failed: {', '.join(bad)}" if bad else "all targets ok"
        return f"gate: {word} ({detail}; {warn} warning{'s' if warn != 1 else ''})"


def _judged_targets(summary: Mapping[str, Any], options: GateOptions) -> tuple[str, ...]:
    targets: Mapping[str, Any] = summary.get("targets") or {}
    known = tuple(targets)
    for flag, names in (("--target", options.targets), ("--expect-fail", options.expect_fail)):
        unknown = [name for name in names if name not in targets]
        if unknown:
            raise UsageError(
                f"{flag} names {unknown[0]!r}, which is not in the run: expected one of {', '.join(known) or 'none'}"
            )
    chosen = options.targets or tuple(name for name, target in targets.items() if target.get("role") != "upstream")
    return tuple(dict.fromkeys([*chosen, *options.expect_fail]))


def _baseline_headline(baseline: Mapping[str, Any] | None, name: str) -> Mapping[str, Any] | None:
    if baseline is None:
        return None
    target = (baseline.get("targets") or {}).get(name)
    headline = target.get("headline") if isinstance(target, dict) else None
    return headline if isinstance(headline, dict) else None


def judge(
    summary: Mapping[str, Any],
    options: GateOptions,
    *,
    late_slopes: Mapping[str, Mapping[str, float | None]] | None = None,
    baseline: Mapping[str, Any] | None = None,
) -> GateVerdict:
    """The gate's verdict on an analysed run (summary.json's dict). Pure: reads nothing, writes nothing.

    ``late_slopes``: per target and series (``rss_bytes``, ``traced_bytes``), the 95% lower bound of the trend
    over the load's second half (``late_trends``). A target under the tracemalloc probe is judged on its traced
    memory, as the analysis's own verdict is.
    ``baseline``: a baseline file's dict (``read_baseline``), for the regression check.
    """
    limits = options.limits
    late_slopes = late_slopes or {}
    verdicts = []
    for name in _judged_targets(summary, options):
        target = summary["targets"][name]
        late = late_slopes.get(name) or {}
        traced = target.get("traced_memory") or {}
        if traced.get("available"):
            memory = check_memory(name, traced, late.get("traced_bytes"), limits, measure="traced memory")
        else:
            memory = check_memory(name, target.get("memory") or {}, late.get("rss_bytes"), limits)
        results = [memory]
        if target.get("role") != "server" and (target.get("upstream") or {}).get("available", False):
            cancellation = target.get("cancellation") or {}
            results += [
                check_leaked_streams(name, target["upstream"], limits),
                check_cancel_latency(name, cancellation, limits),
                check_tokens_after_leave(name, cancellation, limits),
            ]
        if baseline is not None:
            results.append(
                check_regression(
                    name, target.get("headline") or {}, _baseline_headline(baseline, name), limits.tolerances
                )
            )
        verdicts.append(TargetVerdict(name, tuple(results), expect_fail=name in options.expect_fail))
    run = summary.get("run") or {}
    notes = tuple(str(note) for note in summary.get("notes") or [])  # an incomplete run is the first of them
    return GateVerdict(str(run.get("path", "")), tuple(verdicts), notes)


# -- reading the run and the baseline ------------------------------------------------------------------------------
def late_trends(run: RunData) -> dict[str, dict[str, float | None]]:
    """Per target and series (``rss_bytes``, ``traced_bytes``), the 95% lower bound of the Theil-Sen slope over
    the second half of the load, or None."""
    windows = run.windows
    half = replace(windows, warmup_end=windows.warmup_end + (windows.drain_start - windows.warmup_end) / 2)
    slopes: dict[str, dict[str, float | None]] = {}
    for info in run.targets:
        samples = run.samples[run.samples["target"] == info.name]
        slopes[info.name] = {}
        for column in ("rss_bytes", "traced_bytes"):
            figures = memory_figures(samples, half, column=column)
            slopes[info.name][column] = None if figures is None else figures.slope_low_bytes_per_s
    return slopes


def read_baseline(path: Path) -> dict[str, Any]:
    """A baseline written by ``--save-baseline``, or any summary.json (both keep ``targets.<name>.headline``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--baseline must name an existing file, but {str(path)!r} does not exist") from None
    except (OSError, ValueError) as error:
        raise UsageError(f"--baseline {str(path)!r} is not readable JSON: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
        raise UsageError(f"--baseline {str(path)!r} must be a baseline or summary.json with a 'targets' object")
    return data


def write_baseline(summary: Mapping[str, Any], path: Path) -> None:
    """Keep this run's headline figures per target, to compare later runs with."""
    run = summary.get("run") or {}
    data = {
        "format": BASELINE_FORMAT,
        "kind": "stream-harness gate baseline",
        "from_run": run.get("path"),
        "scenario": run.get("scenario"),
        "targets": {
            name: {"role": target.get("role"), "headline": target.get("headline")}
            for name, target in (summary.get("targets") or {}).items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.tmp")
    aside.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    aside.replace(path)


def gate(folder: Path, options: GateOptions) -> GateVerdict:
    """Analyse the run folder (writing its summary.json, as ``harness report`` does) and judge it."""
    if not folder.is_dir():
        raise RunFolderError(f"RUN_DIR must be a run folder, but {str(folder)!r} is not a directory")
    baseline = read_baseline(options.baseline) if options.baseline else None
    run = load_run(folder)
    summary = analyse_run(run)
    if options.write_summary:
        aside = folder / f".{SUMMARY}.tmp"
        aside.write_text(json.dumps(summary, indent=2) + "\n")
        aside.replace(folder / SUMMARY)
    verdict = judge(summary, options, late_slopes=late_trends(run), baseline=baseline)
    if options.save_baseline:
        write_baseline(summary, options.save_baseline)
    return verdict


def run_gate(folder: Path, options: GateOptions, stream: TextIO | None = None) -> int:
    """Judge, print a line per check, write the JUnit and Markdown outputs; return the exit code (0, 1)."""
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
    """The Locust plugin's entry: judge ``folder`` with Locust's parsed ``--gate*`` options; 0, 1 or 2.

    Errors do not escape: one line goes to stderr and their exit code is returned, for process_exit_code.
    """
    try:
        return run_gate(folder, options_from_locust(options), stream)
    except HarnessError as error:
        sys.stderr.write(f"harness gate: error: {error}\n")
        return error.exit_code


def judge_locust_run(environment: Any, folder: Path | None) -> int:
    """At Locust's ``quitting``, with ``--gate``: judge the finished run folder and set Locust's exit code.

    A failing gate (1) or bad gate input (2) becomes ``environment.process_exit_code``, unless Locust already
    chose a higher one; a passing gate leaves Locust's own decision alone. Returns the gate's code.
    """
    if folder is None:
        sys.stderr.write("harness gate: error: no run folder to judge (the run did not start)\n")
        code = 2
    else:
        code = gate_run(folder, environment.parsed_options)
    if code:
        environment.process_exit_code = max(code, environment.process_exit_code or 0)
    return code
