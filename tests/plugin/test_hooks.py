"""The Locust plugin, through real Locust runs in subprocesses: flags, launching and stopping the bundled stack
(at the end, on SIGINT, when a target dies), the web UI, and distributed mode with every record on the master.

Every process a run starts carries a tag in its environment, so a test can prove none is left behind.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from tests.support import (
    DISCONNECTS,
    SHORT,
    assert_all_gone,
    free_port,
    locust,
)


def test_target_that_never_becomes_ready_stops_everything(tmp_path: Path) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless", "--ready-timeout", "10ms") as run:
        assert run.wait(60) == 1
        output = run.output()
        error = [line for line in output.splitlines() if line.startswith("locust: error:")]
        assert len(error) == 1, output
        assert "'upstream@" in error[0]  # each relay's own upstream starts first
        assert "last output" in error[0]
        assert "Traceback" not in output
        assert run.meta()["status"] == "interrupted"
        assert_all_gone(run.tag)


@pytest.mark.slow
def test_sigint_mid_run_stops_the_stack(tmp_path: Path) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless") as run:
        run.wait_for("phase start", run.phase_started)
        pids = [target["pid"] for target in run.meta()["targets"]]
        assert len(pids) == 6  # three relays, each with its own upstream
        assert all(psutil.pid_exists(pid) for pid in pids)
        run.wait_for("streams", lambda: len(run.table("clients")) > 0)
        os.kill(run.proc.pid, signal.SIGINT)
        time.sleep(0.3)
        os.kill(run.proc.pid, signal.SIGINT)  # an impatient second Ctrl-C must not cut the stop short
        assert run.wait(30) == 128 + signal.SIGINT
        assert run.table("upstream_streams")
        assert "Traceback" not in run.output()
        assert_all_gone(run.tag)
        assert run.meta()["status"] == "interrupted"
        assert run.meta()["interrupted_by"] == "SIGINT"


@pytest.mark.slow
def test_a_target_dying_mid_run_ends_the_test_as_a_failure(tmp_path: Path) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless") as run:
        run.wait_for("phase start", run.phase_started)
        lazy = next(target for target in run.meta()["targets"] if target["name"] == "lazy")
        os.kill(lazy["pid"], signal.SIGKILL)
        assert run.wait(30) == 1
        died = [row for row in run.table("events") if row["kind"] == "target_died"]
        assert {row["name"] for row in died} == {"lazy"}  # (the samplers may record it too)
        assert "lazy alive" in run.output()  # the failure in Locust's stats
        assert run.meta()["status"] == "interrupted"
        assert_all_gone(run.tag)


@pytest.mark.slow
def test_web_ui_keeps_the_stack_up_between_test_runs(tmp_path: Path) -> None:
    port = free_port()
    with locust(tmp_path, "-f", DISCONNECTS, "--web-host", "127.0.0.1", "--web-port", str(port)) as run:
        run.wait_for("stack", lambda: len(run.meta()["targets"]) == 6)
        pids = sorted(target["pid"] for target in run.meta()["targets"])
        base = f"http://127.0.0.1:{port}"
        # the stack is up before Locust's web server listens: a start posted in between was refused (a flake)
        run.wait_for("the web UI", lambda: urllib.request.urlopen(base + "/", timeout=2).status == 200, 60)
        form = urllib.parse.urlencode({"user_count": "1", "spawn_rate": "1", "scenario_scale": "0.05"}).encode()

        def folders() -> list[Path]:
            return sorted(path for path in run.run_dir.iterdir() if path.is_dir())

        def rows(folder: Path, name: str) -> list[dict[str, str]]:
            with (folder / f"{name}.csv").open(newline="") as file:
                return list(csv.DictReader(file))

        for test in (1, 2):
            with urllib.request.urlopen(f"{base}/swarm", data=form, timeout=10) as response:
                assert response.status == 200
            run.wait_for("streams", lambda n=test: len(folders()) == n and len(rows(folders()[-1], "clients")) > 0)
            with urllib.request.urlopen(f"{base}/stop", data=b"", timeout=30) as response:
                assert response.status == 200
            meta = json.loads((folders()[-1] / "meta.json").read_text())
            assert sorted(t["pid"] for t in meta["targets"]) == pids  # the same stack, recorded in each test's folder
            assert all(psutil.pid_exists(pid) for pid in pids)
        for folder in folders():  # one run folder per test
            assert len([row for row in rows(folder, "events") if row["kind"] == "test_start"]) == 1
        os.kill(run.proc.pid, signal.SIGTERM)
        run.wait(30)
        assert_all_gone(run.tag)


@pytest.mark.slow
def test_distributed_master_has_every_client_record(tmp_path: Path) -> None:
    port = free_port()
    tag = uuid.uuid4().hex
    common = ("-f", SHORT)  # streams from both workers, not a scenario's phases: about 7 s
    with (
        locust(tmp_path, *common, "--headless", "--master", "--expect-workers", "2",
               "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), tag=tag, name="master") as master,
        locust(tmp_path, *common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
               tag=tag, name="worker1"),
        locust(tmp_path, *common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
               tag=tag, name="worker2"),
    ):  # fmt: skip
        assert master.wait(100) == 0, master.output()[-3000:]
        clients = master.table("clients")
        workers = {row["worker"] for row in clients}
        assert len(workers) == 2
        assert "local" not in workers
        ids = [row["stream_id"] for row in clients]
        assert all(ids)
        assert len(set(ids)) == len(ids)
        upstream_ids = {row["id"] for row in master.table("upstream_streams") if row["id"].startswith("s-")}
        assert upstream_ids
        assert upstream_ids <= set(ids)
        assert_all_gone(tag, timeout_s=20)
