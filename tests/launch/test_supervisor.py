"""The watchdog: after a SIGKILL of Locust, every process the run started and everything a launched command
started is gone within seconds (checked by PID and by listening port), with no help from the dead Locust."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time

import psutil
import pytest

from harness.launch import supervisor
from tests.support import DISCONNECTS, assert_all_gone, locust, tagged_processes

PY = shlex.quote(sys.executable)
# sh stays the launched process; the server is its child (Locust's grandchild), which PDEATHSIG never reaches.
SH_GRANDCHILD = f"sh -c '{PY} -m targets.lazy --port {{port}} --upstream {{upstream}} & wait'"
UVICORN_2 = (
    f"{PY} -m uvicorn --workers 2 --host 127.0.0.1 --port {{port}} --no-access-log "
    "tests.targets_apps.fastapi_proxy:lazy_app"
)


def _listening_ports(processes: list[psutil.Process]) -> set[int]:
    ports = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            ports |= {c.laddr.port for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    return ports


def _listening_now(ports: set[int]) -> set[int]:
    return {
        c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
    }


@pytest.mark.slow
@pytest.mark.parametrize("command", [SH_GRANDCHILD, UVICORN_2], ids=["sh-grandchild", "uvicorn-workers"])
def test_sigkill_of_locust_leaves_no_process_and_no_listener(tmp_path: pytest.TempPathFactory, command: str) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless", "--launch", f"mine={command}") as run:  # type: ignore[arg-type]
        run.wait_for("phase start", run.phase_started, timeout_s=60)
        started = [p for p in tagged_processes(run.tag) if p.pid != run.proc.pid]
        mine = next(t for t in run.meta()["targets"] if t["name"] == "mine")
        descendants = psutil.Process(mine["pid"]).children(recursive=True)
        assert descendants, "the launched command started nothing of its own"
        ports = _listening_ports(started)
        assert len(ports) >= 2  # the upstream and the launched server at least
        os.kill(run.proc.pid, signal.SIGKILL)
        run.wait(10)
        time.sleep(5)  # the brief: no survivor 5 s later
        left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, [(p.pid, p.cmdline()) for p in left]
        assert not _listening_now(ports)
        assert_all_gone(run.tag, timeout_s=0.1)


def test_watchdog_ignores_a_process_that_is_not_there() -> None:
    assert supervisor.main(["999999999"]) == 2


def test_watchdog_cleans_up_a_group_left_by_a_child_that_exited() -> None:
    # A parent that starts a group leader (sh) whose background child outlives it, then exits normally.
    script = (
        "import subprocess, sys, time\n"
        "from harness.launch.supervisor import Supervisor\n"
        "s = Supervisor()\n"
        "p = subprocess.Popen(['sh', '-c', 'sleep 60 & echo $!; exit 0'], stdout=subprocess.PIPE,"
        " start_new_session=True)\n"
        "print(p.stdout.readline().decode().strip(), flush=True)\n"
        "time.sleep(0.6)\n"  # a scan or two: the sleeper is recorded while it is still a descendant
        "p.wait()\n"
        "s.close()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    sleeper = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 5
    while psutil.pid_exists(sleeper) and time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE:
                break
        time.sleep(0.05)
    alive = psutil.pid_exists(sleeper) and psutil.Process(sleeper).status() != psutil.STATUS_ZOMBIE
    if alive:
        os.kill(sleeper, signal.SIGKILL)
    assert not alive
