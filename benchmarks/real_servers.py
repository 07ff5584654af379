"""Verdicts on real servers written the way people write them, each pair side by side, at several scales.

Runs the scenarios with default settings and only the flags that name the servers (``--launch``), several
targets in one Locust run, and prints per target and scale the state of every cancellation or back-pressure check
with its deciding figure, and the basis the cancellation figures rest on. The servers are those of
``tests/targets_apps`` (see each module's docstring for its bug); ``tests/targets_apps/test_real_servers.py``
asserts the same verdicts.

    python -m benchmarks.real_servers [--scales 0.3 1] [--keep DIR]      (from the repository root)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.targets_apps.pairs import DISCONNECT_TARGETS, SLOW_READER_TARGETS, launch_flags

RUNS = {"disconnects": DISCONNECT_TARGETS, "slow_readers": SLOW_READER_TARGETS}
CHECKS = {
    "disconnects": ("leaked_streams", "cancel_latency", "tokens_after_leave"),
    "slow_readers": ("backlog_slow_readers", "leaked_streams"),
}
REPO = Path(__file__).resolve().parent.parent


def run(scenario: str, scale: str, targets: dict[str, str], run_dir: Path) -> Path:
    """One headless Locust run; the path of its run folder."""
    argv = [sys.executable, "-m", "locust", "-f", f"locustfiles/{scenario}.py", "--headless"]
    argv += ["--scenario-scale", scale, "--run-dir", str(run_dir), *launch_flags(targets)]
    subprocess.run(argv, cwd=REPO, check=False, capture_output=True, timeout=300)
    folders = sorted(run_dir.glob(f"{scenario}-*"), key=lambda path: path.stat().st_mtime)
    if not folders:
        raise SystemExit(f"the {scenario} run at scale {scale} left no run folder under {run_dir}")
    return folders[-1]


def cells(summary: dict[str, Any], target: str, checks: tuple[str, ...]) -> list[str]:
    found = {c["check"]: c for c in summary.get("checks", []) if c["target"] == target}
    out = []
    for name in checks:
        check = found.get(name)
        if check is None:
            out.append("-")
            continue
        figure = check.get("figure")
        out.append(f"{check['state']} ({figure:.3g})" if isinstance(figure, int | float) else check["state"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["0.3", "1"])
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="real-servers-"))
    for scenario, targets in RUNS.items():
        print(f"\n{scenario}: " + " | ".join(CHECKS[scenario]) + " | basis")
        rows: dict[str, list[str]] = {}
        for scale in args.scales:
            summary = json.loads((run(scenario, scale, targets, root) / "summary.json").read_text())
            for target in targets:
                basis = summary["targets"][target]["upstream"].get("basis", "?")
                rows.setdefault(target, []).append(
                    f"x{scale}: " + " | ".join(cells(summary, target, CHECKS[scenario])) + f" | {basis}"
                )
        for target, lines in rows.items():
            for line in lines:
                print(f"  {target:12} {line}")
    print(f"\nrun folders: {root}")


if __name__ == "__main__":
    main()
