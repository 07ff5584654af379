"""What the tests share: the real bundled stack, real Locust runs in subprocesses, an agent, free ports, polling
with a deadline, and the proof that no process a run started is left behind.

Import helpers from here (``from tests.support import locust, assert_all_gone``); the pytest fixtures built on
them (``stack``) are in tests/conftest.py. Crafted run folders: tests/runfolders.py; Chromium: tests/browser.py.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.capture.probe_client import ProbeClient, ProbeLaunch
from harness.launch.process import ChildProcess, LaunchSpec, stop_all
from harness.launch.stack import StackOptions, add_stack_arguments, start_bundled_stack

REPO = Path(__file__).parents[1]
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
    """Fail naming every process still carrying ``tag`` after ``timeout_s``."""
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


def side_by_side(root: Path, runs: dict[str, tuple[str, ...]], timeout_s: float = 150) -> dict[str, LocustRun]:
    """Start one ``locust`` per entry (name -> arguments, run folders under root/name/reports) at once; wait for
    all (each within ``timeout_s``), assert each exited 0 and left no process behind, and return the finished runs
    (their folders and output stay readable)."""
    with contextlib.ExitStack() as stack:
        started = {}
        for name, args in runs.items():
            (root / name).mkdir()
            started[name] = stack.enter_context(locust(root / name, *args))
        for name, run in started.items():
            assert run.wait(timeout_s) == 0, (name, run.output()[-3000:])
    for run in started.values():
        assert_all_gone(run.tag)
    return started


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DISCONNECTS = "locustfiles/disconnects.py"
"""The bundled scenario most tests run (relative to REPO, the cwd of every ``locust`` run)."""
SHORT = "tests/short_scenario.py"
"""About 7 s of clients reading whole short streams, for tests whose subject is not a scenario's phases."""
BUNDLED_SCALE = "0.3"
"""The scale of the ``bundled_runs`` fixture's runs (tests/conftest.py)."""


class Stack:
    """A running bundled stack: ``stack.url["lazy"]``, ``stack.stats("upstream")``."""

    def __init__(self, children: list[ChildProcess]) -> None:
        self.children = {child.name: child for child in children}
        self.url = {child.name: str(child.url) for child in children}

    def get_json(self, name: str, path: str) -> Any:
        with urllib.request.urlopen(self.url[name] + path, timeout=5) as response:
            return json.load(response)

    def stats(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json(name, "/__harness/stats")
        return result


def start_stack(tmp_path: Path, *upstream_argv: str, relay_argv: tuple[str, ...] = ()) -> Iterator[Stack]:
    """Start upstream + eager + lazy + bounded with the bundled defaults plus these flags; stop them after."""
    defaults = StackOptions.from_args(_default_args(), ("eager", "lazy", "bounded"))
    options = StackOptions(
        upstream_argv=defaults.upstream_argv + upstream_argv,
        relay_argv=defaults.relay_argv + relay_argv,
        ready_timeout_s=20,
    )
    children = start_bundled_stack(options, tmp_path / "logs")
    try:
        yield Stack(children)
    finally:
        stop_all(children, grace_s=3)


def _default_args() -> Any:
    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    return parser.parse_args([])


stack_running = contextlib.contextmanager(start_stack)
"""``with stack_running(tmp_path, "--rate", "200") as stack:`` a stack of the test's own."""


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; return whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


@contextlib.contextmanager
def agent_running(
    stack: Stack, name: str, out: Path, *, port: int = 0, as_name: str = "server", interval: str = "100ms"
) -> Iterator[ChildProcess]:
    """A real ``python -m harness agent`` sampling the stack's ``name`` relay; ready (its /meta answers) within
    15 s, stopped after (SIGTERM, then SIGKILL)."""
    upstream_port = urllib.parse.urlsplit(stack.url["upstream"]).port
    argv = [sys.executable, "-m", "harness", "agent", "--pid", str(stack.children[name].pid), "--port", str(port)]
    argv += ["--upstream-port", str(upstream_port), "--interval", interval]
    argv += ["--name", as_name, "--stats-url", stack.url[name], "--out", str(out)]
    agent = ChildProcess(LaunchSpec(f"agent-{as_name}", argv, ready_path="/meta"), out / "agent.log")
    try:
        agent.wait_ready(15)
        yield agent
    finally:
        agent.stop(grace_s=5)


class Loopback:
    """Listeners on 127.0.0.1 and ::1 with some connections from this process to each."""

    def __init__(self) -> None:
        self.listener4 = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener6 = socket.create_server(("::1", 0), family=socket.AF_INET6, backlog=64)
        self.port4 = self.listener4.getsockname()[1]
        self.port6 = self.listener6.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.accepted: list[socket.socket] = []

    def connect(self, count: int, *, six: bool = False) -> list[socket.socket]:
        made = []
        for _ in range(count):
            address = ("::1", self.port6) if six else ("127.0.0.1", self.port4)
            client = socket.create_connection(address, timeout=5)
            self.accepted.append((self.listener6 if six else self.listener4).accept()[0])
            made.append(client)
        self.clients += made
        return made

    def close(self) -> None:
        for sock in [*self.clients, *self.accepted, self.listener4, self.listener6]:
            sock.close()


GROWER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    held = []
    signal_file = Path(sys.argv[1])
    print("program listening on http://127.0.0.1:1", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if signal_file.exists():
            held.append(bytes(1_000_000))
            signal_file.unlink()
        time.sleep(0.02)
    """
)
"""A program that grows by 1 MB every time the file named by its argument appears (and removes it), for 60 s."""


@contextlib.contextmanager
def probed_program(
    tmp_path: Path, name: str = "grower", nframe: int = 1
) -> Iterator[tuple[ProbeClient, Path, ChildProcess]]:
    """GROWER run under the real tracemalloc probe (``nframe`` 0: one that only counts): (its client, the file that
    makes it grow, the process); ready within 20 s, stopped after (SIGTERM, then SIGKILL)."""
    script = tmp_path / f"{name}.py"
    script.write_text(GROWER)
    launch = ProbeLaunch.new(tmp_path / f"{name}.probe-port", nframe=nframe, snapshot_dir=tmp_path)
    grow = tmp_path / f"{name}.grow"
    child = ChildProcess(
        LaunchSpec(name, launch.argv(["python", str(script), str(grow)]), ready_path=None, env=launch.env()),
        tmp_path / f"{name}.log",
    )
    try:
        child.wait_ready(20)
        yield ProbeClient.for_child(child), grow, child
    finally:
        child.stop(grace_s=3)


def run_python(script: str, *args: str, timeout_s: float = 60.0) -> list[str]:
    """Run ``script`` with ``python -c`` in the repository (gevent's monkey patching stays out of pytest this way);
    its stdout lines, after asserting it exited 0 (stderr's tail in the message)."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()
