"""Profiling never changes a verdict: the mixed scenario at two scales, with the tracemalloc probe on and off.

Runs ``locustfiles/mixed.py`` headless on the bundled relays (eager, lazy, bounded) four times: scales 0.3 and 1,
each with profiling on (the demo's default, ``--profile-nframe 1``: memory judged on traced memory) and off
(``--profile-nframe 0``: judged on RSS). Prints the verdict table, one row per target and check, one column per
run, and whether the four agree; then the judged figures behind any disagreement. Exit 1 when a state differs.

    python benchmarks/profiling_verdicts.py                     # about 3 minutes
    python benchmarks/profiling_verdicts.py --scales 0.3 --runs-dir /tmp/pv
    python benchmarks/profiling_verdicts.py --runs-dir /tmp/pv --rejudge     # judge those folders again, no runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCENARIO = "locustfiles/mixed.py"
SCENARIO_S = 58.0
PROFILES = (("on", "1"), ("off", "0"))


def _rejudge(run_dir: Path) -> dict[str, Any]:
    from harness.judge.summary import write_summary

    (folder,) = [path for path in run_dir.iterdir() if path.is_dir()]
    return write_summary(folder)


def _run(scale: float, nframe: str, run_dir: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "locust", "-f", SCENARIO, "--headless", "--scenario-scale", f"{scale:g}"]
    argv += ["--profile-nframe", nframe, "--run-dir", str(run_dir), "--loglevel", "WARNING", "--only-summary"]
    log = run_dir.with_name(run_dir.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = process.wait(timeout=SCENARIO_S * scale + 90)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
    folders = [path for path in run_dir.iterdir() if path.is_dir()] if run_dir.exists() else []
    if code != 0 or len(folders) != 1:
        raise SystemExit(f"locust exited {code} for scale {scale:g}, profiling {nframe}: see {log}")
    summary: dict[str, Any] = json.loads((folders[0] / "summary.json").read_text())
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.3,1", help="comma-separated scenario scales (default: 0.3,1)")
    parser.add_argument("--runs-dir", default="", help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--rejudge", action="store_true", help="judge the run folders under --runs-dir again")
    args = parser.parse_args(argv)
    scales = [float(text) for text in args.scales.split(",") if text.strip()]
    root = Path(args.runs_dir) if args.runs_dir else Path(tempfile.mkdtemp(prefix="profiling-verdicts-"))
    runs: dict[str, dict[str, Any]] = {}
    for scale in scales:
        for label, nframe in PROFILES:
            name = f"scale {scale:g}, profiling {label}"
            print(f"running {name} ...", file=sys.stderr, flush=True)
            run_dir = root / f"s{scale:g}-p{label}"
            runs[name] = _rejudge(run_dir) if args.rejudge else _run(scale, nframe, run_dir)
    states: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
    for name, summary in runs.items():
        for check in summary["checks"]:
            key = (check["target"], check["check"])
            states.setdefault(key, {})[name] = (check["state"], check.get("phrase") or "")
    columns = list(runs)
    width = max(len(f"{t} {c}") for t, c in states) + 2
    print(f"{'target check':<{width}}" + "".join(f"{column:<30}" for column in columns) + "agree")
    differ = []
    for (target, check), by_run in states.items():
        cells = [by_run.get(column, ("—", ""))[0] for column in columns]
        agree = len(set(cells)) == 1
        if not agree:
            differ.append((target, check))
        print(
            f"{target + ' ' + check:<{width}}" + "".join(f"{cell:<30}" for cell in cells) + ("yes" if agree else "NO")
        )
    for target, check in differ:
        print(f"\n{target} {check}:")
        for column in columns:
            state, phrase = states[(target, check)].get(column, ("—", ""))
            print(f"  {column:<28} {state:<10} {phrase}")
    print(f"\nrun folders: {root}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
