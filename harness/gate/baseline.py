"""Baselines: a run's headline figures per target, kept to compare later runs with (``--save-baseline``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import UsageError

__all__ = ["BASELINE_FORMAT", "baseline_headline", "read_baseline", "write_baseline"]

BASELINE_FORMAT = 2


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


def baseline_headline(baseline: Mapping[str, Any] | None, name: str) -> Mapping[str, Any] | None:
    """The baseline's headline figures of target ``name``, or None."""
    if baseline is None:
        return None
    target = (baseline.get("targets") or {}).get(name)
    headline = target.get("headline") if isinstance(target, dict) else None
    return headline if isinstance(headline, dict) else None


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
