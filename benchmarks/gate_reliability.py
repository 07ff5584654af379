"""How often the CI gate is right: repeat the short gated run of the bundled stack and count wrong verdicts.

Each repetition runs the mixed scenario headless (Locust in a subprocess, the bundled stack on loopback) at every
``--scales`` value, interleaved so machine noise falls on all of them alike, then judges the run folder with the
gate's defaults. Right verdicts: eager (the positive control) fails, lazy and bounded pass. Prints, per scale, the
load duration, eager's miss rate, lazy's and bounded's false-fail rates and the smallest margins seen, then the
shortest load duration at which every verdict was right.

    python benchmarks/gate_reliability.py                 # 10 runs at each of 0.2, 0.3, 0.5
    python benchmarks/gate_reliability.py --runs 3 --scales 0.3
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
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from harness.gate.config import GateOptions
from harness.gate.run import gate

REPO = Path(__file__).resolve().parent.parent
SCENARIO = "locustfiles/mixed.py"
SCENARIO_S = 58.0
"""The mixed scenario's length at scale 1 (warm-up 8, mix 20, burst 8, mix again 10, drain 12)."""
STACK_FLAGS = ("--upstream-token-bytes", "512", "--upstream-rate", "100", "--upstream-tokens", "3000")
"""As in tests/test_gate_run.py (which also passes --profile-nframe 0)."""
TAG = "HARNESS_BENCH_TAG"
EXPECT_FAIL = "eager"
GOOD = ("lazy", "bounded")


@dataclass(frozen=True, slots=True)
class Outcome:
    scale: float
    load_s: float
    """Warm-up end to drain start, from the run folder."""
    wall_s: float
    failed: dict[str, list[str]]
    """Per target, the checks it failed."""
    figures: dict[str, dict[str, Any]]
    """Per target, its headline figures."""
    error: str = ""


def _tagged(tag: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get(TAG) == tag:
                found.append(process)
    return found


def _run_locust(scale: float, run_dir: Path, deadline_s: float, profile_nframe: int) -> tuple[int, str]:
    tag = uuid.uuid4().hex
    argv = [sys.executable, "-m", "locust", "-f", SCENARIO, "--headless", "--scenario-scale", f"{scale:g}"]
    argv += [*STACK_FLAGS, "--profile-nframe", str(profile_nframe)]
    argv += ["--run-dir", str(run_dir), "--loglevel", "WARNING", "--only-summary"]
    log = run_dir.with_name(run_dir.name + ".log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, TAG: tag},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return process.wait(timeout=deadline_s), log.read_text(errors="replace")
    except subprocess.TimeoutExpired:
        return -1, f"locust still running after {deadline_s:.0f} s"
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for leftover in _tagged(tag):  # the bundled stack runs in its own sessions
            with contextlib.suppress(psutil.Error):
                leftover.kill()


def one_run(scale: float, workdir: Path, profile_nframe: int = 0) -> Outcome:
    run_dir = workdir / f"scale{scale:g}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    code, output = _run_locust(scale, run_dir, SCENARIO_S * scale + 60, profile_nframe)
    wall = time.monotonic() - started
    folders = [path for path in run_dir.iterdir() if path.is_dir()] if run_dir.exists() else []
    if code != 0 or len(folders) != 1:
        return Outcome(scale, 0.0, wall, {}, {}, error=f"locust exit {code}: {output.strip()[-300:]}")
    verdict = gate(folders[0], GateOptions())
    summary_targets = _summary(folders[0])
    windows = _windows(folders[0])
    failed: dict[str, list[str]] = defaultdict(list)
    for result in verdict.results:
        if result.state == "fail":
            failed[result.target].append(result.check)
    return Outcome(scale, windows, wall, dict(failed), summary_targets)


def _summary(folder: Path) -> dict[str, dict[str, Any]]:
    summary = json.loads((folder / "summary.json").read_text())
    return {name: target.get("headline") or {} for name, target in summary["targets"].items()}


def _windows(folder: Path) -> float:
    windows = json.loads((folder / "summary.json").read_text())["run"]["windows"]
    return float(windows["drain_start_s"] - windows["warmup_end_s"])


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f}"


def report(outcomes: list[Outcome], scales: list[float]) -> str:
    header = (
        f"{'scale':>5} {'run s':>6} {'load s':>6} {'runs':>4} {'eager miss':>10} {'lazy ff':>8} {'bounded ff':>10} "
        f"{'errors':>6} | {'good max retained MiB':>21} {'good max p99 ms':>15} {'good max orphans':>16} "
        f"{'eager min retained MiB':>22} {'eager min orphans':>17}"
    )
    lines = [header, "-" * len(header)]
    all_right: list[tuple[float, float]] = []
    for scale in scales:
        mine = [o for o in outcomes if o.scale == scale]
        ok = [o for o in mine if not o.error]
        n = len(ok)
        miss = sum(EXPECT_FAIL not in o.failed for o in ok)
        ff = {name: sum(name in o.failed for o in ok) for name in GOOD}
        good = [o.figures.get(name, {}) for o in ok for name in GOOD]
        eager = [o.figures.get(EXPECT_FAIL, {}) for o in ok]

        def top(rows: list[dict[str, Any]], key: str, pick: Any) -> Any:
            values = [row[key] for row in rows if row.get(key) is not None]
            return pick(values) if values else None

        p99 = top(good, "cancel_latency_p99_ms", max)
        lines.append(
            f"{scale:>5g} {SCENARIO_S * scale:>6.1f} {sum(o.load_s for o in ok) / max(n, 1):>6.1f} {n:>4} "
            f"{miss:>5}/{n:<4} {ff['lazy']:>4}/{n:<3} {ff['bounded']:>6}/{n:<3} {len(mine) - n:>6} | "
            f"{_mib(top(good, 'retained_growth_bytes', max)):>21} {'n/a' if p99 is None else f'{p99:.0f}':>15} "
            f"{str(top(good, 'orphans_at_end', max)):>16} {_mib(top(eager, 'retained_growth_bytes', min)):>22} "
            f"{str(top(eager, 'orphans_at_end', min)):>17}"
        )
        if n and n == len(mine) and miss == 0 and not any(ff.values()):
            all_right.append((scale, sum(o.load_s for o in ok) / n))
    lines.append("")
    if all_right:
        scale, load_s = min(all_right)
        lines.append(
            f"shortest with every verdict right: scale {scale:g} = {SCENARIO_S * scale:.1f} s of scenario, "
            f"{load_s:.1f} s of load between warm-up and drain"
        )
    else:
        lines.append("no scale had every verdict right")
    errors = [o for o in outcomes if o.error]
    lines += [f"error at scale {o.scale:g}: {o.error}" for o in errors[:5]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="repetitions per scale (default: 10)")
    parser.add_argument(
        "--scales", default="0.2,0.3,0.5", help="scenario scales, comma-separated (default: 0.2,0.3,0.5)"
    )
    parser.add_argument(
        "--profile-nframe",
        type=int,
        default=0,
        help="run the relays under the tracemalloc probe with N frames (the gate then judges traced memory; "
        "default: 0, off, as a CI gate runs)",
    )
    parser.add_argument("--workdir", help="keep run folders here (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    scales = sorted(float(text) for text in args.scales.split(","))
    if args.runs < 1 or not scales or max(scales) * SCENARIO_S > 40:
        parser.error(f"--runs must be >= 1 and --scales at most {40 / SCENARIO_S:.2f} (40 s), got {args.scales!r}")
    with contextlib.ExitStack() as stack:
        workdir = Path(args.workdir) if args.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        outcomes = []
        started = time.monotonic()
        for repetition in range(args.runs):
            for scale in scales:
                outcome = one_run(scale, workdir, args.profile_nframe)
                outcomes.append(outcome)
                wrong = [n for n in GOOD if n in outcome.failed] + ([] if EXPECT_FAIL in outcome.failed else ["eager"])
                print(
                    f"run {repetition + 1}/{args.runs} scale {scale:g}: {outcome.wall_s:.0f} s wall, "
                    f"{'error: ' + outcome.error if outcome.error else 'wrong: ' + (', '.join(wrong) or 'none')}",
                    flush=True,
                )
        print(
            f"\n{len(outcomes)} runs in {time.monotonic() - started:.0f} s ({os.cpu_count()} cores, "
            f"--profile-nframe {args.profile_nframe})\n"
        )
        print(report(outcomes, scales))
    return 0


if __name__ == "__main__":
    sys.exit(main())
