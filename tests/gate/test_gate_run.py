"""The project's own CI gate: a short real headless run of the bundled stack, judged at its end.

The eager relay is the positive control: it buffers for stalled readers and keeps producing for clients that left,
so it must fail; lazy and bounded must pass. One Locust run (about 25 s of load) is judged twice: in the Locust
process at ``quitting`` with ``--gate`` (the plugin's one-command CI step), and again by ``harness gate`` on the
run folder it left (the two-step CI step).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.judge import verdict_lines
from tests.support import REPO, assert_all_gone, locust

STATES_SHOWN = {"PASS", "WARN", "FAIL", "NOT JUDGED"}

GATE_SCALE = "0.4"
"""The mixed scenario's 58 s times this: about 23 s of load, then a short drain."""
GATE_STACK_FLAGS = (
    "--upstream-token-bytes",
    "512",
    "--upstream-rate",
    "100",
    "--upstream-tokens",
    "3000",
    "--profile-nframe",
    "0",
)
"""Streams long enough (30 s) to outlive the drain; relays without the tracemalloc probe (RSS is then the
measure, and the relays run at full speed)."""


@pytest.mark.slow
def test_short_gated_run_fails_eager_and_passes_lazy_and_bounded(tmp_path: Path) -> None:
    junit = tmp_path / "gate.xml"
    argv = [
        "-f",
        str(REPO / "locustfiles" / "mixed.py"),
        "--headless",
        "--scenario-scale",
        GATE_SCALE,
        *GATE_STACK_FLAGS,
    ]
    argv += [
        "--gate",
        "--gate-expect-fail",
        "eager",
        "--gate-junit",
        str(junit),
        "--gate-config",
        str(tmp_path / "none"),
    ]
    (tmp_path / "none").write_text("")  # an empty config: the documented defaults
    with locust(tmp_path, *argv) as run:
        code = run.wait(90)
        output = run.output()
        assert_all_gone(run.tag)
        folder = run.folder()
    assert code == 0, output[-4000:]
    stored = json.loads((folder / "summary.json").read_text())  # as the run left it: its report's checks
    assert "PASS       eager positive_control: expected to fail (positive control) and failed " in output
    assert "gate: PASS (all targets ok;" in output
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    names = {case.get("classname") for case in cases}
    relays = ("eager", "lazy", "bounded")
    assert names == {"gate.run", *(f"gate.{name}" for name in relays), *(f"gate.upstream@{name}" for name in relays)}
    assert not [case for case in cases if case.find("failure") is not None]

    # the same folder, judged again by the command, without declaring the control: eager alone fails
    judged = subprocess.run(
        [sys.executable, "-m", "harness", "gate", str(folder), "--config", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert judged.returncode == 1, judged.stdout + judged.stderr
    lines = judged.stdout.splitlines()
    for name in ("lazy", "bounded"):
        mine = [line for line in lines if line[11:].startswith(f"{name} ")]
        assert len(mine) == 9, judged.stdout  # every check of a relay
        assert not [line for line in mine if line.startswith("FAIL")], judged.stdout
    eager = [line for line in lines if line[11:].startswith("eager ")]
    assert any(line.startswith("FAIL       eager leaked_streams: ") for line in eager), judged.stdout
    assert lines[-1].startswith("gate: FAIL (1 of 3 targets failed: eager;")
    # the checks the run stored (report, terminal) are the command's, word for word
    assert verdict_lines(stored)[:-1] == [line for line in lines if line[:10].strip() in STATES_SHOWN]


@pytest.mark.slow
def test_a_gated_run_interrupted_with_ctrl_c_never_exits_0(tmp_path: Path) -> None:
    (tmp_path / "none").write_text("")
    argv = ["-f", str(REPO / "locustfiles" / "disconnects.py"), "--headless", "--targets", "lazy"]
    argv += ["--gate", "--gate-config", str(tmp_path / "none")]
    with locust(tmp_path, *argv) as run:
        run.wait_for("phase start", run.phase_started, timeout_s=60)
        deadline = time.monotonic() + 4
        run.wait_for("4 s of load", lambda: time.monotonic() >= deadline, timeout_s=10)
        os.kill(run.proc.pid, signal.SIGINT)
        code = run.wait(60)
        output = run.output()
        assert_all_gone(run.tag)
    assert code != 0, output[-3000:]
    assert "NOT JUDGED run run_complete: not judged: the run ended as 'interrupted', not 'complete'" in output
    assert "gate: NOT JUDGEABLE (exit 3: run run_complete)" in output
