"""The Locust plugin, through real Locust runs in subprocesses: flags, launching and stopping the bundled stack
(at the end, on SIGINT, when a target dies), the web UI, and distributed mode with every record on the master.

Every process a run starts carries a tag in its environment, so a test can prove none is left behind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).parents[2]
TAG = "HARNESS_TEST_TAG"


@dataclass
class LocustRun:
    """One Locust process (and whatever it started), with its run-dir root and output."""

    run_dir: Path
    tag: str
    log: Path
    proc: subprocess.Popen[bytes] = field(init=False)

    def folder(self) -> Path:
        folders = [path for path in self.run_dir.iterdir() if path.is_dir()] if self.run_dir.exists() else []
        assert len(folders) == 1, f"expected one run folder under {self.run_dir}, found {folders}"
        return folders[0]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"locust still running after {timeout_s} s:\n{self.output()[-3000:]}") from None

    def meta(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.folder() / "meta.json").read_text())
        return result

    def table(self, name: str) -> list[dict[str, str]]:
        with (self.folder() / f"{name}.csv").open(newline="") as file:
            return list(csv.DictReader(file))

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = 40.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(AssertionError, OSError, ValueError):
                if check():
                    return
            if self.proc.poll() is not None:
                raise AssertionError(f"locust exited ({self.proc.returncode}) before {what}:\n{self.output()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"no {what} after {timeout_s} s:\n{self.output()[-3000:]}")

    def phase_started(self) -> bool:
        return any(row["kind"] == "phase_start" for row in self.table("events"))


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``tag``."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get(TAG) == tag and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def assert_all_gone(tag: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (left := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left behind: {[(p.pid, p.cmdline()) for p in left]}"


def _kill_tagged(tag: str) -> None:
    for process in tagged_processes(tag):
        with contextlib.suppress(psutil.Error):
            process.kill()


@contextlib.contextmanager
def locust(tmp_path: Path, *args: str, tag: str | None = None, name: str = "locust") -> Iterator[LocustRun]:
    """Start ``python -m locust *args`` (run folders under tmp_path/reports); kill it and its children after."""
    tag = tag or uuid.uuid4().hex
    run = LocustRun(tmp_path / "reports", tag, tmp_path / f"{name}.log")
    env = {**os.environ, TAG: tag, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "locust", *args]
    if "--worker" not in args:
        argv += ["--run-dir", str(run.run_dir)]
        if "--profile-nframe" not in args:
            # Profiling (on by default for the demo) is tested where it is the subject; elsewhere it only slows.
            argv += ["--profile-nframe", "0"]
    with run.log.open("wb") as log:
        run.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGTERM)
            try:
                run.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait(timeout=10)
        _kill_tagged(tag)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


DISCONNECTS = "locustfiles/disconnects.py"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--targets", "eager,nope"),
        ("--target-url", "lazy=ftp://127.0.0.1:80"),
        ("--target-url", "http://127.0.0.1:8080"),
        ("--upstream-rate", "fast"),
        ("--client-rcvbuf", "100"),
        ("--read-pace", "quickly"),
        ("--scenario-scale", "0"),
        ("--sample-interval", "1ms"),
    ],
)
def test_bad_flag_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path, flag: str, value: str) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless", flag, value) as run:
        assert run.wait(60) == 2
        errors = [line for line in run.output().splitlines() if "error" in line.lower()]
        assert len(errors) == 1, run.output()
        assert flag in errors[0]
        assert repr(value) in errors[0] or value in errors[0]
        assert "Traceback" not in run.output()
        assert not run.run_dir.exists()  # init never ran: no run folder, no process launched
        assert_all_gone(run.tag)


def test_target_that_never_becomes_ready_stops_everything(tmp_path: Path) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless", "--ready-timeout", "10ms") as run:
        assert run.wait(60) == 1
        output = run.output()
        error = [line for line in output.splitlines() if line.startswith("locust: error:")]
        assert len(error) == 1, output
        assert "'upstream'" in error[0]
        assert "last output" in error[0]
        assert "Traceback" not in output
        assert run.meta()["status"] == "interrupted"
        assert_all_gone(run.tag)


@pytest.mark.slow
def test_sigint_mid_run_stops_the_stack(tmp_path: Path) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless") as run:
        run.wait_for("phase start", run.phase_started)
        pids = [target["pid"] for target in run.meta()["targets"]]
        assert len(pids) == 4
        assert all(psutil.pid_exists(pid) for pid in pids)
        os.kill(run.proc.pid, signal.SIGINT)
        run.wait(30)
        assert_all_gone(run.tag)
        assert run.meta()["status"] == "interrupted"


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
        run.wait_for("stack", lambda: len(run.meta()["targets"]) == 4)
        pids = sorted(target["pid"] for target in run.meta()["targets"])
        base = f"http://127.0.0.1:{port}"
        form = urllib.parse.urlencode({"user_count": "1", "spawn_rate": "1", "scenario_scale": "0.05"}).encode()
        for _ in range(2):
            with urllib.request.urlopen(f"{base}/swarm", data=form, timeout=10) as response:
                assert response.status == 200
            run.wait_for("streams", lambda: len(run.table("clients")) > 0, timeout_s=30)
            with urllib.request.urlopen(f"{base}/stop", data=b"", timeout=30) as response:
                assert response.status == 200
            assert sorted(t["pid"] for t in run.meta()["targets"]) == pids
            assert all(psutil.pid_exists(pid) for pid in pids)
        starts = [row for row in run.table("events") if row["kind"] == "test_start"]
        assert len(starts) == 2
        os.kill(run.proc.pid, signal.SIGTERM)
        run.wait(30)
        assert_all_gone(run.tag)


@pytest.mark.slow
def test_distributed_master_has_every_client_record(tmp_path: Path) -> None:
    port = free_port()
    tag = uuid.uuid4().hex
    common = ("-f", DISCONNECTS, "--scenario-scale", "0.3")
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
