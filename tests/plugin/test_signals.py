"""SIGTERM and SIGINT at any moment of a run: an orderly stop (samplers, end records, the upstream's per-stream
records, a report marked interrupted), then exit 128 + the signal, with nothing left running."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support import DISCONNECTS, assert_all_gone, free_port, locust


@pytest.mark.slow
def test_sigterm_at_5s_of_a_headless_run_keeps_the_run_folder(tmp_path: Path) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless") as run:
        run.wait_for("phase start", run.phase_started, timeout_s=60)
        # ~5 s in: the terminal's first per-target line comes 5 s after the test starts
        run.wait_for("a per-target line", lambda: "[harness] eager: RSS" in run.output(), timeout_s=15)
        os.kill(run.proc.pid, signal.SIGTERM)
        assert run.wait(40) == 128 + signal.SIGTERM, run.output()[-3000:]
        meta = run.meta()
        assert meta["status"] == "interrupted"
        assert meta["interrupted_by"] == "SIGTERM"
        assert meta["ended_at"] is not None
        assert "samplers" in meta or any(key.startswith("sampl") for key in meta), sorted(meta)
        assert run.table("upstream_streams"), "the upstream's per-stream records were lost"
        assert run.table("clients")
        kinds = {row["kind"] for row in run.table("events")}
        assert {"interrupted", "test_start", "phase_start"} <= kinds
        report = (run.folder() / "report.html").read_text()
        assert "interrupted" in report
        assert (run.folder() / "summary.json").exists()
        assert "Traceback" not in run.output()
        assert_all_gone(run.tag)


@pytest.mark.slow
def test_sigterm_while_the_targets_start_stops_everything(tmp_path: Path) -> None:
    # A launched command that never becomes ready: Locust is still in its init when the signal comes.
    never_ready = "mine=sh -c 'sleep 60' sh {port}"
    with locust(tmp_path, "-f", DISCONNECTS, "--headless", "--launch", never_ready, "--launch-timeout", "30s") as run:
        run.wait_for("launch", lambda: "launching mine" in run.output(), timeout_s=30)
        os.kill(run.proc.pid, signal.SIGTERM)
        assert run.wait(30) == 128 + signal.SIGTERM, run.output()[-3000:]
        lines = [line for line in run.output().splitlines() if line.startswith("locust: interrupted")]
        assert len(lines) == 1, run.output()[-2000:]
        assert "SIGTERM" in lines[0]
        assert "Traceback" not in run.output()
        assert run.meta()["status"] == "interrupted"
        assert_all_gone(run.tag)


@pytest.mark.slow
def test_sigterm_of_the_web_ui_exits_non_zero_after_the_stop(tmp_path: Path) -> None:
    port = free_port()
    with locust(tmp_path, "-f", DISCONNECTS, "--web-host", "127.0.0.1", "--web-port", str(port)) as run:
        run.wait_for("stack", lambda: len(run.meta()["targets"]) == 6, timeout_s=60)  # 3 relays, 3 upstreams
        os.kill(run.proc.pid, signal.SIGTERM)
        assert run.wait(30) == 128 + signal.SIGTERM, run.output()[-3000:]
        assert run.meta()["interrupted_by"] == "SIGTERM"
        assert_all_gone(run.tag)
