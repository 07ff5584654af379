"""A target dying mid-run, with profiling on: the stop completes and nothing recorded is lost; the run folder, the
summary and the report say which target died and when."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.support import DISCONNECTS, assert_all_gone, locust

TABLES = ("clients", "events", "samples", "stats", "connections", "upstream_streams")


@pytest.mark.slow
def test_a_target_killed_mid_run_with_profiling_on_keeps_every_file(tmp_path: Path) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless", "--scenario-scale", "0.3", "--profile-nframe", "1") as run:
        run.wait_for("the first wave", lambda: sum(r["kind"] == "phase_start" for r in run.table("events")) >= 2)
        lazy = next(target for target in run.meta()["targets"] if target["name"] == "lazy")
        os.kill(lazy["pid"], signal.SIGKILL)
        assert run.wait(60) == 1, run.output()[-3000:]
        folder = run.folder()
        for table in TABLES:
            assert len(run.table(table)) > 0, f"{table}.csv lost"
        meta = run.meta()
        assert meta["status"] == "interrupted"
        assert {"sampler", "tracemalloc"} <= set(meta), sorted(meta)
        snapshots = {path.name for path in (folder / "tracemalloc").iterdir()}
        for survivor in ("eager", "bounded"):  # their end snapshots were still taken
            assert f"{survivor}.end.tracemalloc" in snapshots, sorted(snapshots)
        died = [row for row in run.table("events") if row["kind"] == "target_died"]
        assert {row["name"] for row in died} == {"lazy"}
        summary = json.loads((folder / "summary.json").read_text())
        (alive,) = [c for c in summary["checks"] if c["target"] == "lazy" and c["check"] == "target_alive"]
        assert alive["state"] == "fail"
        assert alive["supporting"]["died_at_s"] > 0
        assert summary["judgement"]["state"] != "pass"
        assert "died at" in (folder / "report.html").read_text()
        assert "[harness] FAIL       lazy target_alive: its process died at" in run.output()
        assert_all_gone(run.tag)
