"""Launching child servers: readiness, failures with their last output, stopping with SIGKILL after a grace."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.errors import TargetDiedError, TargetStartError
from harness.launch.process import ChildProcess, LaunchSpec, stop_all


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_ready_when_it_prints_its_url_and_answers(tmp_path: Path) -> None:
    child = ChildProcess(
        LaunchSpec("up", [sys.executable, "-m", "targets.upstream", "--port", "0"]), tmp_path / "up.log"
    )
    try:
        url = child.wait_ready(15)
        assert url.startswith("http://127.0.0.1:")
        assert child.describe()["url"] == url
        child.check_alive()
    finally:
        assert child.stop() == 0  # SIGTERM is a clean stop for the bundled servers
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE


def test_exiting_at_once_names_target_exit_code_and_last_output(tmp_path: Path) -> None:
    child = ChildProcess(
        LaunchSpec("broken", python("print('loading'); print('boom: no config'); exit(3)")), tmp_path / "b.log"
    )
    with pytest.raises(TargetStartError) as caught:
        child.wait_ready(10)
    message = str(caught.value)
    assert "'broken' exited with code 3" in message
    assert "boom: no config" in message
    assert "\n" not in message


def test_never_ready_is_stopped_and_reported(tmp_path: Path) -> None:
    child = ChildProcess(
        LaunchSpec("mute", python("import time; print('warming up', flush=True); time.sleep(60)")), tmp_path / "m.log"
    )
    started = time.monotonic()
    with pytest.raises(TargetStartError, match=r"'mute' was not ready after 1 s; last output: warming up"):
        child.wait_ready(1)
    assert time.monotonic() - started < 10
    assert child.poll() is not None


def test_a_url_that_never_answers_is_named(tmp_path: Path) -> None:
    code = "import time; print('x listening on http://127.0.0.1:9 pid=1', flush=True); time.sleep(60)"
    child = ChildProcess(LaunchSpec("deaf", python(code)), tmp_path / "d.log")
    with pytest.raises(TargetStartError, match=r"http://127.0.0.1:9/__harness/stats never answered 200"):
        child.wait_ready(1)


def test_sigterm_ignored_means_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    code = (
        "import signal, time, subprocess, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " time.sleep(60)'])\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    child = ChildProcess(
        LaunchSpec("stubborn", python(code), ready_path=None, url="http://127.0.0.1:9"), tmp_path / "s.log"
    )
    child.wait_ready(10)
    time.sleep(0.5)  # let it start its own child
    grandchildren = psutil.Process(child.pid).children(recursive=True)
    assert grandchildren
    started = time.monotonic()
    code_ = child.stop(grace_s=0.5)
    assert code_ == -9
    assert time.monotonic() - started < 5
    gone, alive = psutil.wait_procs(grandchildren, timeout=5)
    assert not alive  # the whole process group went


def test_died_mid_run_names_it(tmp_path: Path) -> None:
    child = ChildProcess(
        LaunchSpec("short", python("print('bye', flush=True)"), ready_path=None, url="http://x"), tmp_path / "x.log"
    )
    child.popen.wait(timeout=10)
    with pytest.raises(TargetDiedError, match=r"target 'short' \(pid \d+\) exited with code 0; last output: bye"):
        child.check_alive()


def test_a_command_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(TargetStartError, match=r"target 'ghost': cannot run '/no/such/server'"):
        ChildProcess(LaunchSpec("ghost", ["/no/such/server"]), tmp_path / "g.log")


def test_stop_all_stops_everyone(tmp_path: Path) -> None:
    children = [
        ChildProcess(LaunchSpec(f"s{i}", python("import time; time.sleep(60)"), ready_path=None), tmp_path / f"{i}.log")
        for i in range(3)
    ]
    stop_all(children, grace_s=2)
    assert all(child.poll() is not None for child in children)
