"""Starting the user's --launch targets, waiting until each answers, and checking the --attach ones.

Each launched target is given its own fake upstream (started before it by ``harness.launch.stack.start_upstreams``):
``{upstream}`` in its command and ``$STREAM_HARNESS_UPSTREAM_URL`` are that upstream's URL.

A launched Python command that runs in the harness's own environment runs under the probe
(harness.capture.probe), whatever the flags: with ``--profile-launched N`` traced by tracemalloc, by default
(N = 0) only counting its asyncio tasks, at full speed, so the churn check sees a task kept per connection. A
command naming another environment's interpreter runs as given (the probe would import it in ours).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from harness.capture.probe_client import ProbeLaunch
from harness.capture.program import parse_program
from harness.errors import TargetStartError, UsageError
from harness.launch.process import ChildProcess, LaunchSpec, stop_all
from harness.launch.targets_spec import (
    LAUNCH_HOST,
    PORT_ENV,
    STOP_GRACE_S,
    TAIL_LINES,
    UPSTREAM_ENV,
    AttachTarget,
    LaunchTarget,
)

__all__ = ["attach_warning", "free_port", "launch_targets", "listening_ports", "wait_answering"]

log = logging.getLogger("harness")


def free_port(host: str = LAUNCH_HOST) -> int:
    """A port free right now (the launched server binds it a moment later; a race nobody else on loopback runs)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _not_under_probe(argv: Sequence[str]) -> str | None:
    """Why ``argv`` cannot run under the probe, or None when it can: a Python program run by the harness's own
    interpreter, or by one in the same environment (its ``bin`` folder)."""
    try:
        parse_program(argv)
    except UsageError:
        return "it is not a Python command"
    first = argv[0] if argv else ""
    if first.startswith("-") or first.endswith(".py") or first == sys.executable:
        return None
    found = shutil.which(first) if os.sep not in first else first
    if found is not None and Path(found).absolute().parent == Path(sys.executable).absolute().parent:
        return None
    return f"it runs {first!r}, not the harness's Python ({sys.executable})"


def launch_targets(
    launches: Sequence[LaunchTarget],
    *,
    upstream_urls: Mapping[str, str],
    log_dir: Path,
    timeout_s: float,
    profile_nframe: int = 0,
    snapshot_dir: Path | None = None,
) -> list[ChildProcess]:
    """Start every launched target (``upstream_urls``: target name -> its own upstream's URL) and wait until each
    answers; on any failure stop them all, then raise."""
    children: list[ChildProcess] = []
    try:
        for target in launches:
            upstream_url = upstream_urls.get(target.name)
            if target.needs_upstream and upstream_url is None:
                raise TargetStartError(f"launched target {target.name!r} needs {{upstream}}, but no upstream runs")
            port = free_port()
            argv = target.argv(port=port, upstream_url=upstream_url or "")
            env = {PORT_ENV: str(port), "PORT": str(port)}
            if upstream_url:
                env[UPSTREAM_ENV] = upstream_url
            why_not = _not_under_probe(argv)
            if why_not is None:
                # The probe runs the program in the harness's own Python (it imports harness.capture.probe).
                snapshots = snapshot_dir or log_dir.parent  # (a run folder holds logs/ and tracemalloc/)
                probe = ProbeLaunch.new(log_dir / f"{target.name}.probe-port", profile_nframe, snapshots)
                argv, env = probe.argv(argv), env | probe.env()
            else:
                log.info("%s runs without the probe (%s): psutil samples only, no task count", target.name, why_not)
            spec = LaunchSpec(target.name, argv, target.ready_path, f"http://{LAUNCH_HOST}:{port}", env)
            children.append(ChildProcess(spec, log_dir / f"{target.name}.log"))
        for child in children:
            wait_answering(child, timeout_s)
    except BaseException:
        stop_all(children, grace_s=STOP_GRACE_S)
        raise
    return children


def _answers(url: str, *, any_status: bool) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return 200 <= int(response.status) < 300
    except urllib.error.HTTPError:
        return any_status  # an HTTP answer all the same
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(child: ChildProcess) -> str:
    lines = child.last_lines(TAIL_LINES)
    return " | ".join(lines) if lines else "(no output)"


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process and its descendants listen on (empty if it cannot be read)."""
    import psutil

    ports: set[int] = set()
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return ports
    for process in processes:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports.update(c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN and c.laddr)
    return ports


def _probe_ports(child: ChildProcess) -> set[int]:
    """The port of the probe's control endpoint, when the child runs under it (not the target's own port)."""
    launch = ProbeLaunch.from_env(child.spec.env)
    try:
        text = launch.port_file.read_text().strip() if launch is not None else ""
    except OSError:
        return set()
    return {int(text)} if text.isdigit() else set()


def wait_answering(child: ChildProcess, timeout_s: float) -> None:
    """Block until the launched target answers at its URL; else stop it and raise TargetStartError."""
    assert child.url is not None
    path = child.spec.ready_path or "/"
    port = urlsplit(child.url).port
    deadline = time.monotonic() + timeout_s
    while True:
        code = child.poll()
        if code is not None:
            raise TargetStartError(
                f"launched target {child.name!r} exited with code {code} before it answered on {child.url}; "
                f"last output: {_tail(child)}"
            )
        if _answers(child.url + path, any_status=child.spec.ready_path is None):
            return
        if time.monotonic() >= deadline:
            listening = listening_ports(child.pid) - _probe_ports(child)
            others = sorted(listening - {port}) if port and port not in listening else []
            code = child.stop(STOP_GRACE_S)
            where = (
                f"it listens on port {', '.join(map(str, others))} instead (use {{port}} or $PORT in its command)"
                if others
                else f"{child.url}{path} never answered"
            )
            raise TargetStartError(
                f"launched target {child.name!r} was not ready after {timeout_s:g} s: {where}; "
                f"stopped it (exit code {code}); last output: {_tail(child)}"
            )
        time.sleep(0.1)


def attach_warning(target: AttachTarget) -> str | None:
    """One sentence when the attached PID is gone or does not listen on the URL's port; else None."""
    if target.pid is None:
        return None
    import psutil

    if not psutil.pid_exists(target.pid):
        return f"attached target {target.name!r}: pid {target.pid} does not exist; its server figures will be missing"
    ports = listening_ports(target.pid)
    if target.port not in ports:
        found = ", ".join(map(str, sorted(ports))) or "no port (or none it may read)"
        return (
            f"attached target {target.name!r}: pid {target.pid} does not listen on port {target.port} of {target.url} "
            f"(it listens on {found}); are the samples of the right process?"
        )
    return None
