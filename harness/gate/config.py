"""The gate's options: ``[tool.harness.gate]`` in a pyproject.toml, then command-line flags, over the defaults.

The defaults live in ``harness.judge.limits.Limits``; this module turns each source's keys into its fields. Every
value is checked here, once, whichever source it came from (harness/gate/values.py), and a bad one, or limits that
make a check impossible (a warn limit above its fail limit), raise UsageError (exit 2) with one line.

``[tool.harness.gate]`` keys (flag: ``--`` and the key with ``-`` for ``_``):

==========================  ===========  ============================================================
key                         default      meaning
==========================  ===========  ============================================================
backlog                     "16MiB"      memory held for slow readers: fail at or above (or ...)
backlog_share               "25%"        ... this share of the target's baseline, when larger
backlog_warn                "4MiB"       ... warn at or above
backlog_rising              "1MiB"       ... fail at or above when still rising at backlog_rate late in their stay
backlog_rate                "64KiB"      per second and slow client: the rise late in their stay that confirms it
backlog_ahead               "512KiB"     ... and the upstream ran this far ahead of a slow reader (its own books)
per_request                 "1MiB"       memory retained per 1,000 requests with no slow reader: fail
per_request_min             "4MiB"       ... once the retained growth itself reaches this
per_request_min_requests    30           fewer requests with no slow reader connected: not judged
leaked_streams              0            upstream streams allowed open after the drain with no client
cancel_p99                  "2s"         p99 from a client leaving to its upstream stream closing: fail
cancel_p99_warn             "500ms"      ... warn above
after_leave_share           "20%"        tokens produced over 0.5 s after clients left, of all produced: fail
after_leave_warn_share      "10%"        ... warn above
churn_kept                  100          descriptors/threads/tasks kept per 1,000 churn connections
churn_rounds                4            rounds of the churn phase; a leak rises in every one after the first
stalled_hold                "10s"        a client that reads nothing held longer than this: stalled_state
stalled_state               "warn"       "warn" or "fail"
targets                     []           targets to judge (empty: every relay and server, not the upstream)
expect_fail                 []           positive controls: targets that must fail a check
baseline                    ""           a baseline file to compare with (see ``--baseline``)
tolerance                   (table)      METRIC = "10%+4MiB": allowed increase over the baseline, per metric
==========================  ===========  ============================================================
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.gate import values
from harness.judge.limits import DEFAULT_TOLERANCES, Limits, Tolerance

__all__ = [
    "CONFIG_KEYS",
    "LIMIT_KEYS",
    "GateOptions",
    "configured_limits",
    "load_pyproject",
    "options_from_args",
    "options_from_locust",
    "settings_from_table",
]

LIMIT_KEYS: dict[str, tuple[str, Callable[[object, str], Any]]] = {
    "backlog": ("backlog_bytes", values.size_value),
    "backlog_share": ("backlog_share", values.share_value),
    "backlog_warn": ("backlog_warn_bytes", values.size_value),
    "backlog_rising": ("backlog_rising_bytes", values.size_value),
    "backlog_rate": ("backlog_rate_bytes_per_s", values.size_value),
    "backlog_ahead": ("backlog_ahead_bytes", values.size_value),
    "per_request": ("per_request_bytes", values.size_value),
    "per_request_min": ("per_request_min_bytes", values.size_value),
    "per_request_min_requests": ("per_request_min_requests", values.count_value),
    "leaked_streams": ("leaked_streams", values.count_value),
    "cancel_p99": ("cancel_p99_ms", values.duration_ms_value),
    "cancel_p99_warn": ("cancel_p99_warn_ms", values.duration_ms_value),
    "after_leave_share": ("after_leave_share", values.share_value),
    "after_leave_warn_share": ("after_leave_warn_share", values.share_value),
    "churn_kept": ("churn_kept_per_1000", values.number_value),
    "churn_rounds": ("churn_rounds", values.count_value),
    "stalled_hold": ("stalled_hold_s", values.duration_s_value),
    "stalled_state": ("stalled_state", values.state_value),
}
"""Config key (and flag, with dashes) -> Limits field and the parser of its value."""
_OTHER_KEYS = ("targets", "expect_fail", "baseline", "tolerance")
CONFIG_KEYS = (*LIMIT_KEYS, *_OTHER_KEYS)
_REPLACED = {
    "memory_growth": "backlog (slow readers) and per_request (growth per 1,000 requests)",
    "memory_growth_share": "backlog_share",
    "memory_rate": "backlog_rate (the trend now confirms a backlog under slow readers)",
    "memory_min": "backlog_warn and per_request_min",
}


@dataclass(frozen=True, slots=True)
class GateOptions:
    """One gate run: which targets, which are positive controls, the limits, baseline and outputs."""

    limits: Limits = field(default_factory=Limits)
    targets: tuple[str, ...] = ()
    """Empty: every relay and server in the run (not the upstream, which is the instrument)."""
    expect_fail: tuple[str, ...] = ()
    baseline: Path | None = None
    save_baseline: Path | None = None
    junit: Path | None = None
    markdown: Path | None = None
    write_summary: bool = True
    """Write summary.json into the run folder, with the gate's checks, as ``harness report`` would."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What a source sets: only the keys it names."""

    limits: dict[str, Any] = field(default_factory=dict)
    tolerances: tuple[Tolerance, ...] = ()
    targets: tuple[str, ...] | None = None
    expect_fail: tuple[str, ...] | None = None
    baseline: Path | None = None


def _names(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise UsageError(f"{what} must be a list of target names such as ['eager'], but got {value!r}")
    return tuple(name for item in value for name in (part.strip() for part in item.split(",")) if name)


def load_pyproject(path: Path, *, required: bool) -> Settings:
    """The ``[tool.harness.gate]`` table of ``path``; nothing when the file is absent and not ``required``."""
    if not path.is_file():
        if required:
            raise UsageError(f"--config must name a readable pyproject.toml, but {str(path)!r} does not exist")
        return Settings()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{str(path)!r} is not readable TOML: {error}") from error
    table = document.get("tool", {}).get("harness", {}).get("gate", {})
    if not isinstance(table, dict):
        raise UsageError(f"[tool.harness.gate] in {str(path)!r} must be a table, but got {table!r}")
    return settings_from_table(table, base_dir=path.parent)


def settings_from_table(table: Mapping[str, Any], *, base_dir: Path) -> Settings:
    """Check every key and value of a ``[tool.harness.gate]`` table."""
    where = "[tool.harness.gate]"
    for key in table:
        if key in _REPLACED:
            raise UsageError(
                f"{where} {key} = {table[key]!r} is no longer a key: memory is judged by cause, see {_REPLACED[key]}"
            )
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(
            f"{where} has an unknown key {unknown[0]} = {table[unknown[0]]!r}: expected one of {', '.join(CONFIG_KEYS)}"
        )
    limits = {name: parse(table[key], f"{where} {key}") for key, (name, parse) in LIMIT_KEYS.items() if key in table}
    tolerances: list[Tolerance] = []
    raw = table.get("tolerance", {})
    if not isinstance(raw, dict):
        raise UsageError(f'{where} tolerance must be a table of METRIC = "10%", but got {raw!r}')
    for metric, limit in raw.items():
        if not isinstance(limit, str):
            raise UsageError(f"{where} tolerance.{metric} must be a string such as '10%+4MiB', but got {limit!r}")
        tolerances.append(values.tolerance_value(metric, limit, f"{where} tolerance", f"{metric} = {limit!r}"))
    baseline = table.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline):
        raise UsageError(f"{where} baseline must be a file path, but got {baseline!r}")
    return Settings(
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


def combine(settings: Sequence[Settings], source: str) -> Limits:
    """The defaults, overridden by each source in turn; limits that make a check impossible are refused."""
    limits = Limits()
    for setting in settings:
        limits = replace(limits, **setting.limits)
    tolerances = _merge_tolerances(DEFAULT_TOLERANCES, *(setting.tolerances for setting in settings))
    limits = replace(limits, tolerances=tolerances)
    try:
        limits.check_order()
    except ValueError as error:
        raise UsageError(f"{source}: {error}") from None
    return limits


def flag_settings(args: argparse.Namespace) -> Settings:
    """The limits and tolerances ``harness gate``'s flags set (harness/gate/flags.py)."""
    limits = {}
    for key, (name, parse) in LIMIT_KEYS.items():
        value = getattr(args, f"gate_{key}", None)
        if value is not None:
            limits[name] = parse(value, "--" + key.replace("_", "-"))
    tolerances = tuple(values.parse_tolerance(text) for text in getattr(args, "tolerance", []) or [])
    return Settings(limits=limits, tolerances=tolerances)


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None


def options_from_args(args: argparse.Namespace) -> GateOptions:
    """``harness gate``'s options: defaults, then the pyproject table, then the flags."""
    config_path = Path(args.config) if args.config else Path("pyproject.toml")
    from_file = load_pyproject(config_path, required=bool(args.config))
    limits = combine([from_file, flag_settings(args)], f"limits from {config_path} and flags")
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


def configured_limits(config: str = "") -> Limits:
    """The limits of ``[tool.harness.gate]`` in ``config`` (default: ./pyproject.toml when it exists) over the
    defaults: what the report and summary.json judge with, so they say what the gate says."""
    config_path = Path(config) if config else Path("pyproject.toml")
    return combine([load_pyproject(config_path, required=bool(config))], f"limits from {config_path}")


def options_from_locust(options: Any) -> GateOptions:
    """The gate's options from Locust's parsed options (harness/gate/flags.py ``add_locust_gate_arguments``)."""
    config = str(getattr(options, "gate_config", "") or "")
    config_path = Path(config) if config else Path("pyproject.toml")
    from_file = load_pyproject(config_path, required=bool(config))
    limits = configured_limits(config)
    expect = tuple(name.strip() for name in str(getattr(options, "gate_expect_fail", "") or "").split(","))
    return GateOptions(
        limits=limits,
        targets=from_file.targets or (),
        expect_fail=tuple(name for name in expect if name) or from_file.expect_fail or (),
        baseline=_path(str(getattr(options, "gate_baseline", "") or "")) or from_file.baseline,
        junit=_path(str(getattr(options, "gate_junit", "") or "")),
    )
