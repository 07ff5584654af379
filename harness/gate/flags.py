"""The gate's command-line flags: ``harness gate``'s and the Locust plugin's ``--gate*``.

Values stay text here and are checked with the config's (harness/gate/config.py): one line, exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from harness.gate import values
from harness.gate.config import LIMIT_KEYS

__all__ = ["add_gate_arguments", "add_locust_gate_arguments"]

_FLAG_HELP = {
    "backlog": "memory held for slow readers beyond what requests explain: fail at or above (default: 16MiB)",
    "backlog_share": "... or this share of the target's baseline memory, when larger (default: 25%%)",
    "backlog_warn": "... warn at or above (default: 4MiB)",
    "backlog_rising": "... fail at or above when still rising at --backlog-rate late in their stay (default: 1MiB)",
    "backlog_rate": "per second and slow client, late in their stay: confirms a growing backlog (default: 64KiB)",
    "backlog_ahead": "... with the upstream this far ahead of a slow reader, by its books (default: 512KiB)",
    "per_request": "memory retained per 1,000 requests with no slow reader connected: fail (default: 1MiB)",
    "per_request_min": "... once the retained growth itself reaches this (default: 4MiB)",
    "per_request_min_requests": "fewer requests than this: growth per request is not judged (default: 30)",
    "leaked_streams": "upstream streams allowed open after the drain with no client (default: 0)",
    "cancel_p99": "fail when the cancellation latency p99 is above this (default: 2s)",
    "cancel_p99_warn": "warn above this (default: 500ms)",
    "after_leave_share": "fail above this share of tokens produced over 0.5 s after clients left (default: 20%%)",
    "after_leave_warn_share": "warn above this share (default: 10%%)",
    "churn_kept": "resources kept per 1,000 churn connections, rising every round: fail (default: 100)",
    "churn_rounds": "rounds the churn phase is cut into (default: 4)",
    "stalled_hold": "a client that reads nothing held longer than this is --stalled-state (default: 10s)",
    "stalled_state": "warn or fail (default: warn)",
}
_METAVAR: dict[Callable[[object, str], Any], str] = {
    values.size_value: "SIZE",
    values.share_value: "SHARE",
    values.duration_ms_value: "DURATION",
    values.duration_s_value: "DURATION",
    values.count_value: "N",
    values.number_value: "NUMBER",
    values.state_value: "STATE",
}


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """``harness gate``'s flags."""
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
        help="allowed increase over the baseline, e.g. backlog_bytes:10%%+4MiB (repeatable)",
    )
    for key, (_, parse) in LIMIT_KEYS.items():
        parser.add_argument(
            "--" + key.replace("_", "-"), dest=f"gate_{key}", metavar=_METAVAR[parse], help=_FLAG_HELP[key]
        )


def add_locust_gate_arguments(parser: Any) -> None:
    """The Locust plugin's gate flags: ``--gate`` turns it on; limits come from ``--gate-config``'s table."""
    group = parser.add_argument_group("gate", "judge the run at its end and set Locust's exit code")
    group.add_argument(
        "--gate", action="store_true", help="judge the run when it ends: exit 0 pass, 1 fail, 3 not judgeable"
    )
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
