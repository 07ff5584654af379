"""Starting the user's --launch targets, waiting until each answers, and checking the --attach ones.

Each launched target is given its own fake upstream (started before it by ``harness.launch.stack.start_upstreams``):
``{upstream}`` in its command and ``$STREAM_HARNESS_UPSTREAM_URL`` are that upstream's URL.
"""

from __future__ import annotations

import logging
import socket
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


def _is_python(argv: Sequence[str]) -> bool:
    try:
        parse_program(argv)
    except UsageError:
        return False
    return True


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
            if profile_nframe and _is_python(argv):
                # The probe runs the program in the harness's own Python (it imports harness.capture.probe).
                snapshots = snapshot_dir or log_dir.parent  # (a run folder holds logs/ and tracemalloc/)
                probe = ProbeLaunch.new(log_dir / f"{target.name}.probe-port", profile_nframe, snapshots)
                argv, env = probe.argv(argv), env | probe.env()
            elif profile_nframe:
                log.info("%s is not a Python command: psutil samples only, no tracemalloc", target.name)
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
            others = sorted(listening_ports(child.pid) - {port} if port else set())
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
