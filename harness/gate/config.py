"""The gate's limits: documented defaults, ``[tool.harness.gate]`` in a pyproject.toml, then command-line flags.

Every value is checked here, once, whichever source it came from, and a bad one raises UsageError (exit 2) with
one line naming the key (or flag) and the value. Sizes and durations must carry a unit (``16MiB``, ``500ms``):
a bare number is ambiguous, so it is refused. Shares are fractions (``0.2``) or percentages (``"20%"``).

``[tool.harness.gate]`` keys (flag: ``--`` and the key with ``-`` for ``_``), defaults in ``GateLimits``:

========================  ===========  ==================================================================
key                       default      meaning
========================  ===========  ==================================================================
memory_growth             "16MiB"      absolute floor: RSS growth after the warm-up below it never fails
memory_growth_share       "25%"        relative floor, of the target's baseline RSS; the larger floor is the limit
memory_rate               "64KiB"      per second: the trend's 95% lower bound must reach it to confirm growth
memory_min                "4MiB"       noise floor: growth below it is not even a warning
leaked_streams            0            upstream streams allowed open after the drain with no client
cancel_p99                "2s"         p99 from a client leaving to its upstream stream closing: fail above
cancel_p99_warn           "500ms"      ... warn above
after_leave_share         "20%"        tokens produced after clients left, of all produced: fail above
after_leave_warn_share    "5%"         ... warn above
targets                   []           targets to judge (empty: every relay and server, not the upstream)
expect_fail               []           positive controls: targets that must fail a check
baseline                  ""           a baseline file to compare with (see ``--baseline``)
tolerance                 (table)      METRIC = "10%+4MiB": allowed increase over the baseline, per metric
========================  ===========  ==================================================================
"""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.units import format_bytes, parse_duration, parse_size

__all__ = [
    "CONFIG_KEYS",
    "DEFAULT_TOLERANCES",
    "METRIC_UNITS",
    "GateLimits",
    "GateOptions",
    "Tolerance",
    "add_gate_arguments",
    "add_locust_gate_arguments",
    "format_amount",
    "load_pyproject",
    "options_from_args",
    "options_from_locust",
    "parse_tolerance",
    "settings_from_table",
]

_MIB = 1 << 20
_KIB = 1 << 10

METRIC_UNITS = {
    "retained_growth_bytes": "size",
    "growth_bytes": "size",
    "slope_low_bytes_per_s": "size",
    "held_per_client_bytes": "size",
    "orphans_at_end": "count",
    "orphan_stream_seconds": "duration",
    "cancel_latency_p99_ms": "duration_ms",
    "tokens_after_leave_share": "share",
    "ttft_p95_ms": "duration_ms",
}
"""The headline figures (summary.json ``targets.<name>.headline``) a baseline can be compared on, and their kind."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much a figure may rise over its baseline value: the larger of a share of it and a fixed amount."""

    metric: str
    share: float = 0.0
    """0.1 = the figure may rise by 10% of its baseline value."""
    amount: float = 0.0
    """In the metric's own unit (bytes, ms, a count, a share)."""

    def allowed(self, baseline: float) -> float:
        return max(self.share * abs(baseline), self.amount)

    def __str__(self) -> str:
        parts = []
        if self.share:
            parts.append(f"{self.share * 100:g}%")
        if self.amount or not parts:
            parts.append(format_amount(self.metric, self.amount))
        return "+".join(parts)


def format_amount(metric: str, value: float) -> str:
    """A figure of ``metric`` for a sentence: '4.0 MiB', '120 ms', '3', '2.5%'."""
    kind = METRIC_UNITS.get(metric, "count")
    if kind == "size":
        return format_bytes(value) + ("/s" if metric.endswith("_per_s") else "")
    if kind == "duration_ms":
        return f"{value:.0f} ms"
    if kind == "duration":
        return f"{value:.1f} s"
    if kind == "share":
        return f"{value:.1%}"
    return f"{value:g}"


DEFAULT_TOLERANCES = (
    Tolerance("retained_growth_bytes", 0.25, 4 * _MIB),
    Tolerance("slope_low_bytes_per_s", 0.25, 64 * _KIB),
    Tolerance("orphans_at_end", 0.0, 0.0),
    Tolerance("cancel_latency_p99_ms", 0.5, 100.0),
    Tolerance("tokens_after_leave_share", 0.25, 0.02),
)
"""Compared with a baseline unless told otherwise; small fixed amounts keep tiny figures' noise from failing."""


@dataclass(frozen=True, slots=True)
class GateLimits:
    """Where each check turns warn or fail. See the module docstring for the keys that set them."""

    memory_growth_bytes: float = 16 * _MIB
    memory_growth_share: float = 0.25
    """Of the baseline RSS; the memory limit is max(memory_growth_bytes, this × baseline)."""
    memory_rate_bytes_per_s: float = 64 * _KIB
    """The Theil-Sen slope's 95% lower bound must reach this for the growth to count as a trend."""
    memory_min_bytes: float = 4 * _MIB
    leaked_streams: int = 0
    cancel_p99_ms: float = 2000.0
    cancel_p99_warn_ms: float = 500.0
    after_leave_share: float = 0.20
    after_leave_warn_share: float = 0.05
    tolerances: tuple[Tolerance, ...] = DEFAULT_TOLERANCES


@dataclass(frozen=True, slots=True)
class GateOptions:
    """One gate run: which targets, which are positive controls, the limits, baseline and outputs."""

    limits: GateLimits = field(default_factory=GateLimits)
    targets: tuple[str, ...] = ()
    """Empty: every relay and server in the run (not the upstream, which is the instrument)."""
    expect_fail: tuple[str, ...] = ()
    baseline: Path | None = None
    save_baseline: Path | None = None
    junit: Path | None = None
    markdown: Path | None = None
    write_summary: bool = True
    """Write summary.json into the run folder (the analysis does), as ``harness report`` would."""


# -- value parsers: one per kind, each naming the key and the value -----------------------------------------------
def _text(value: object, what: str, example: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        raise UsageError(f"{what} must be a string with a unit such as {example!r}, but got {value!r}")
    if value.strip().startswith("-"):
        raise UsageError(f"{what} must not be negative, but got {value!r}")
    return value


_HAS_UNIT = re.compile(r"[a-zA-Z]\s*$")


def size_value(value: object, what: str) -> float:
    """'16MiB' -> 16777216; a bare number, a negative one or an unknown unit is refused."""
    text = _text(value, what, "16MiB")
    if text.strip().lower().endswith("/s"):
        text = text.strip()[:-2]
    if not _HAS_UNIT.search(text):
        raise UsageError(f"{what} must be a size with a unit such as 16MiB or 512KiB, but got {value!r}")
    return float(parse_size(text, what=what))


def duration_ms_value(value: object, what: str) -> float:
    """'500ms' -> 500.0 (milliseconds); a bare number is refused."""
    text = _text(value, what, "500ms")
    if not _HAS_UNIT.search(text):
        raise UsageError(f"{what} must be a duration with a unit such as 500ms or 2s, but got {value!r}")
    return parse_duration(text, what=what) * 1000.0


def share_value(value: object, what: str) -> float:
    """0.2 or '20%' -> 0.2; must lie in [0, 1]."""
    share: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            share = None
    if share is None or not 0.0 <= share <= 1.0:
        raise UsageError(f"{what} must be a share between 0 and 1 or a percentage such as '20%', but got {value!r}")
    return share


def count_value(value: object, what: str) -> int:
    """A whole number >= 0 (an int in TOML, digits on the command line)."""
    count: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, str) and value.strip().isdigit():
        count = int(value.strip())
    if count is None or count < 0:
        raise UsageError(f"{what} must be a whole number >= 0, but got {value!r}")
    return count


def _amount(metric: str, text: str, what: str) -> float:
    kind = METRIC_UNITS[metric]
    if kind == "size":
        return size_value(text, what)
    if kind == "duration_ms":
        return duration_ms_value(text, what)
    if kind == "duration":
        return duration_ms_value(text, what) / 1000.0
    if kind == "share":
        return share_value(text, what)
    return float(count_value(text, what))


def parse_tolerance(text: str, *, what: str = "--tolerance") -> Tolerance:
    """``retained_growth_bytes:10%``, ``cancel_latency_p99_ms:100ms``, ``retained_growth_bytes:10%+4MiB``."""
    metric, colon, limit = text.partition(":")
    return _tolerance(metric.strip(), limit.strip() if colon else "", what, repr(text))


def _tolerance(metric: str, limit: str, what: str, shown: str) -> Tolerance:
    if metric not in METRIC_UNITS:
        raise UsageError(
            f"{what} names an unknown figure in {shown}: expected one of {', '.join(sorted(METRIC_UNITS))}"
        )
    if not limit:
        raise UsageError(f"{what} must read METRIC:LIMIT such as retained_growth_bytes:10%, but got {shown}")
    share = amount = 0.0
    for part in limit.split("+"):
        part = part.strip()
        if part.endswith("%"):
            share = _number(part[:-1], what, shown) / 100
        else:
            amount = _amount(metric, part, f"{what} {metric}")
    return Tolerance(metric, share, amount)


def _number(text: str, what: str, shown: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise UsageError(f"{what} must give a percentage >= 0 such as 10%, but got {shown}")
    return value


# -- the keys ------------------------------------------------------------------------------------------------------
_LIMIT_KEYS: dict[str, tuple[str, Any]] = {
    "memory_growth": ("memory_growth_bytes", size_value),
    "memory_growth_share": ("memory_growth_share", share_value),
    "memory_rate": ("memory_rate_bytes_per_s", size_value),
    "memory_min": ("memory_min_bytes", size_value),
    "leaked_streams": ("leaked_streams", count_value),
    "cancel_p99": ("cancel_p99_ms", duration_ms_value),
    "cancel_p99_warn": ("cancel_p99_warn_ms", duration_ms_value),
    "after_leave_share": ("after_leave_share", share_value),
    "after_leave_warn_share": ("after_leave_warn_share", share_value),
}
"""Config key (and flag, with dashes) -> GateLimits field and the parser of its value."""
_OTHER_KEYS = ("targets", "expect_fail", "baseline", "tolerance")
CONFIG_KEYS = (*_LIMIT_KEYS, *_OTHER_KEYS)


def _names(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise UsageError(f"{what} must be a list of target names such as ['eager'], but got {value!r}")
    return tuple(name for item in value for name in (part.strip() for part in item.split(",")) if name)


def _check_order(limits: GateLimits, source: str) -> GateLimits:
    pairs = (
        ("cancel_p99_warn", limits.cancel_p99_warn_ms, "cancel_p99", limits.cancel_p99_ms),
        ("after_leave_warn_share", limits.after_leave_warn_share, "after_leave_share", limits.after_leave_share),
        ("memory_min", limits.memory_min_bytes, "memory_growth", limits.memory_growth_bytes),
    )
    for low_key, low, high_key, high in pairs:
        if low > high:
            raise UsageError(f"{source}: {low_key} ({low:g}) must not be above {high_key} ({high:g})")
    return limits


@dataclass(frozen=True, slots=True)
class _Settings:
    """What a source sets: only the keys it names."""

    limits: dict[str, Any] = field(default_factory=dict)
    tolerances: tuple[Tolerance, ...] = ()
    targets: tuple[str, ...] | None = None
    expect_fail: tuple[str, ...] | None = None
    baseline: Path | None = None


def load_pyproject(path: Path, *, required: bool) -> _Settings:
    """The ``[tool.harness.gate]`` table of ``path``; nothing when the file is absent and not ``required``."""
    if not path.is_file():
        if required:
            raise UsageError(f"--config must name a readable pyproject.toml, but {str(path)!r} does not exist")
        return _Settings()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{str(path)!r} is not readable TOML: {error}") from error
    table = document.get("tool", {}).get("harness", {}).get("gate", {})
    if not isinstance(table, dict):
        raise UsageError(f"[tool.harness.gate] in {str(path)!r} must be a table, but got {table!r}")
    return settings_from_table(table, base_dir=path.parent)


def settings_from_table(table: Mapping[str, Any], *, base_dir: Path) -> _Settings:
    """Check every key and value of a ``[tool.harness.gate]`` table."""
    where = "[tool.harness.gate]"
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(
            f"{where} has an unknown key {unknown[0]} = {table[unknown[0]]!r}: expected one of {', '.join(CONFIG_KEYS)}"
        )
    limits = {name: parse(table[key], f"{where} {key}") for key, (name, parse) in _LIMIT_KEYS.items() if key in table}
    tolerances: list[Tolerance] = []
    raw = table.get("tolerance", {})
    if not isinstance(raw, dict):
        raise UsageError(f'{where} tolerance must be a table of METRIC = "10%", but got {raw!r}')
    for metric, limit in raw.items():
        if not isinstance(limit, str):
            raise UsageError(f"{where} tolerance.{metric} must be a string such as '10%+4MiB', but got {limit!r}")
        tolerances.append(_tolerance(metric, limit, f"{where} tolerance", f"{metric} = {limit!r}"))
    baseline = table.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline):
        raise UsageError(f"{where} baseline must be a file path, but got {baseline!r}")
    return _Settings(
        limits=limits,
        tolerances=tuple(tolerances),
        targets=_names(table["targets"], f"{where} targets") if "targets" in table else None,
        expect_fail=_names(table["expect_fail"], f"{where} expect_fail") if "expect_fail" in table else None,
        baseline=base_dir / baseline if baseline else None,
    )


def _merge_tolerances(base: Sequence[Tolerance], *overrides: Sequence[Tolerance]) -> tuple[Tolerance, ...]:
    merged = {tolerance.metric: tolerance for tolerance in base}
    for override in overrides:
        merged.update({tolerance.metric: tolerance for tolerance in override})
    return tuple(merged.values())


# -- flags ---------------------------------------------------------------------------------------------------------
def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """``harness gate``'s flags. Values stay text here and are checked with the config's (one line, exit 2)."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (reports/<scenario>-<time>)")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help="judge only this target (repeatable; default: every relay and server, not the upstream)",
    )
    parser.add_argument(
        "--expect-fail",
        action="append",
        default=[],
        metavar="NAME",
        help="a positive control: the gate passes only if this target fails a check (repeatable)",
    )
    parser.add_argument("--baseline", metavar="FILE", help="compare with this baseline (or summary.json)")
    parser.add_argument("--save-baseline", metavar="FILE", help="write this run's figures as a baseline to FILE")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML: one test case per target and check")
    parser.add_argument(
        "--markdown", metavar="FILE", help="write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY)"
    )
    parser.add_argument(
        "--config",
        metavar="PYPROJECT",
        help="read [tool.harness.gate] from this file (default: ./pyproject.toml when it exists)",
    )
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC:LIMIT",
        help="allowed increase over the baseline, e.g. retained_growth_bytes:10%%+4MiB (repeatable)",
    )
    _add_limit_flags(parser, prefix="--")


_FLAG_HELP = {
    "memory_growth": "absolute floor of the memory limit (default: 16MiB)",
    "memory_growth_share": "relative floor, of the baseline RSS (default: 25%%)",
    "memory_rate": "per second; the trend's 95%% lower bound must reach it to confirm growth (default: 64KiB)",
    "memory_min": "growth below this is not even a warning (default: 4MiB)",
    "leaked_streams": "upstream streams allowed open after the drain with no client (default: 0)",
    "cancel_p99": "fail when the cancellation latency p99 is above this (default: 2s)",
    "cancel_p99_warn": "warn above this (default: 500ms)",
    "after_leave_share": "fail when more than this share of tokens was produced after clients left (default: 20%%)",
    "after_leave_warn_share": "warn above this share (default: 5%%)",
}


_METAVAR = {size_value: "SIZE", share_value: "SHARE", duration_ms_value: "DURATION", count_value: "N"}


def _add_limit_flags(parser: Any, prefix: str, **extra: Any) -> None:
    for key in _LIMIT_KEYS:
        parser.add_argument(
            prefix + key.replace("_", "-"),
            dest=f"gate_{key}",
            metavar=_METAVAR[_LIMIT_KEYS[key][1]],
            help=_FLAG_HELP[key],
            **extra,
        )


def add_locust_gate_arguments(parser: Any) -> None:
    """The Locust plugin's gate flags: ``--gate`` turns it on; limits come from ``--gate-config``'s table."""
    group = parser.add_argument_group("gate", "judge the run at its end and set Locust's exit code")
    group.add_argument("--gate", action="store_true", help="judge the run when it ends: exit 0 pass, 1 fail")
    group.add_argument(
        "--gate-config",
        metavar="PYPROJECT",
        default="",
        help="read [tool.harness.gate] from this file (default: ./pyproject.toml when it exists)",
    )
    group.add_argument(
        "--gate-expect-fail",
        metavar="NAME[,NAME...]",
        default="",
        help="positive controls: targets that must fail a check for the gate to pass",
    )
    group.add_argument("--gate-junit", metavar="FILE", default="", help="also write JUnit XML to FILE")
    group.add_argument("--gate-baseline", metavar="FILE", default="", help="compare with this baseline")


def _flag_settings(args: argparse.Namespace) -> _Settings:
    limits = {}
    for key, (name, parse) in _LIMIT_KEYS.items():
        value = getattr(args, f"gate_{key}", None)
        if value is not None:
            limits[name] = parse(value, "--" + key.replace("_", "-"))
    tolerances = tuple(parse_tolerance(text) for text in getattr(args, "tolerance", []) or [])
    return _Settings(limits=limits, tolerances=tolerances)


def _combine(settings: Sequence[_Settings], source: str) -> GateLimits:
    limits = GateLimits()
    for setting in settings:
        limits = replace(limits, **setting.limits)
    tolerances = _merge_tolerances(DEFAULT_TOLERANCES, *(setting.tolerances for setting in settings))
    return _check_order(replace(limits, tolerances=tolerances), source)


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None


def options_from_args(args: argparse.Namespace) -> GateOptions:
    """``harness gate``'s options: defaults, then the pyproject table, then the flags."""
    config_path = Path(args.config) if args.config else Path("pyproject.toml")
    from_file = load_pyproject(config_path, required=bool(args.config))
    from_flags = _flag_settings(args)
    limits = _combine([from_file, from_flags], f"limits from {config_path} and flags")
    names = tuple(name for item in args.target for name in item.split(",") if name.strip())
    expect = tuple(name for item in args.expect_fail for name in item.split(",") if name.strip())
    return GateOptions(
        limits=limits,
        targets=names or from_file.targets or (),
        expect_fail=expect or from_file.expect_fail or (),
        baseline=_path(args.baseline) or from_file.baseline,
        save_baseline=_path(args.save_baseline),
        junit=_path(args.junit),
        markdown=_path(args.markdown),
    )


def options_from_locust(options: Any) -> GateOptions:
    """The gate's options from Locust's parsed options (``add_locust_gate_arguments``)."""
    config = str(getattr(options, "gate_config", "") or "")
    config_path = Path(config) if config else Path("pyproject.toml")
    from_file = load_pyproject(config_path, required=bool(config))
    limits = _combine([from_file], f"limits from {config_path}")
    expect = tuple(name.strip() for name in str(getattr(options, "gate_expect_fail", "") or "").split(","))
    return GateOptions(
        limits=limits,
        targets=from_file.targets or (),
        expect_fail=tuple(name for name in expect if name) or from_file.expect_fail or (),
        baseline=_path(str(getattr(options, "gate_baseline", "") or "")) or from_file.baseline,
        junit=_path(str(getattr(options, "gate_junit", "") or "")),
    )
