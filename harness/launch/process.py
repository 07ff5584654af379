"""Child processes the harness starts: launch, wait until ready, watch, stop.

Every child writes its output to a log file (never a pipe, so it cannot block on a full pipe and nothing has to
drain it), runs in its own process group (so stopping it stops whatever it started), and is killed with SIGKILL
if the harness itself dies (Linux ``PR_SET_PDEATHSIG``). Every wait has a deadline. Stopping is SIGTERM to the
group, then SIGKILL after a grace period: some servers ignore SIGTERM while a stream is stuck.

Works unchanged in the gevent-patched Locust process (subprocess, time and urllib are cooperative there).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import TargetDiedError, TargetStartError

__all__ = ["ChildProcess", "LaunchSpec", "stop_all"]

_LISTENING = re.compile(r"listening on (https?://\S+)")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """How to start one server."""

    name: str
    argv: Sequence[str]
    ready_path: str | None = "/__harness/stats"
    """Path that answers 200 once the server is ready; None = ready when it prints its URL."""
    url: str | None = None
    """Where it will listen, when the harness chose the port; None = read from its 'listening on URL' line."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to the harness's own environment."""


def _load_prctl() -> Any:
    """libc's prctl, looked up once in the parent: ``find_library`` runs ``ldconfig`` in a subprocess, which must
    never happen between fork and exec (a forked child of a threaded process, such as Locust's master with its zmq
    threads, can deadlock there, and Popen then waits for it forever)."""
    if sys.platform != "linux":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True).prctl if name else None


_PRCTL = _load_prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # One C call and nothing else: no imports, no allocation-heavy Python, no subprocesses.
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ChildProcess:
    """One server started by the harness, with its log and, once ready, its URL."""

    def __init__(self, spec: LaunchSpec, log_path: Path) -> None:
        self.spec = spec
        self.name = spec.name
        self.log_path = log_path
        self.url: str | None = spec.url
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            try:
                self.popen = subprocess.Popen(
                    list(spec.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1", **spec.env},
                    start_new_session=True,
                    preexec_fn=_die_with_parent if _PRCTL is not None else None,
                )
            except OSError as error:
                raise TargetStartError(
                    f"target {spec.name!r}: cannot run {spec.argv[0]!r}: {error.strerror or error}"
                ) from error
        self.pid = self.popen.pid

    def __repr__(self) -> str:
        return f"<ChildProcess {self.name} pid={self.pid} url={self.url}>"

    def last_lines(self, count: int = 12) -> list[str]:
        """The last lines it printed (stdout and stderr)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-count:]

    def _tail_for_error(self) -> str:
        lines = self.last_lines()
        return " | ".join(lines) if lines else "(no output)"

    def poll(self) -> int | None:
        """Its exit code, or None while it runs."""
        return self.popen.poll()

    def check_alive(self) -> None:
        """Raise TargetDiedError if it exited."""
        code = self.poll()
        if code is not None:
            raise TargetDiedError(
                f"target {self.name!r} (pid {self.pid}) exited with code {code}; last output: {self._tail_for_error()}"
            )

    def wait_ready(self, timeout_s: float) -> str:
        """Block until it answers (its URL printed, and ``ready_path`` answering 200); return its URL."""
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.poll()
            if code is not None:
                raise TargetStartError(
                    f"target {self.name!r} exited with code {code} before it was ready; "
                    f"last output: {self._tail_for_error()}"
                )
            if self.url is None:
                match = _LISTENING.search("\n".join(self.last_lines(50)))
                if match:
                    self.url = match.group(1)
            if self.url is not None and (self.spec.ready_path is None or _answers(self.url + self.spec.ready_path)):
                return self.url
            if time.monotonic() >= deadline:
                self.stop()
                raise TargetStartError(
                    f"target {self.name!r} was not ready after {timeout_s:g} s"
                    + (f" ({self.url}{self.spec.ready_path} never answered 200)" if self.url else "")
                    + f"; last output: {self._tail_for_error()}"
                )
            time.sleep(0.05)

    def stop(self, grace_s: float = 5.0) -> int | None:
        """SIGTERM to its process group, SIGKILL after ``grace_s``; return its exit code."""
        for signum, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)
            try:
                return self.popen.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        return self.popen.poll()

    def describe(self) -> dict[str, object]:
        """What meta.json and ``harness serve --json`` record of it."""
        return {"name": self.name, "url": self.url, "pid": self.pid, "argv": list(self.spec.argv)}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop_all(children: Sequence[ChildProcess], grace_s: float = 5.0) -> None:
    """Stop every child, the last started first; SIGTERM all of them before waiting on any."""
    for child in reversed(children):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGTERM)
    for child in reversed(children):
        child.stop(grace_s)


def write_servers_json(path: Path, children: Sequence[ChildProcess]) -> None:
    """Write each child's name, URL and PID to ``path`` (``harness serve --json``)."""
    payload = {child.name: child.describe() for child in children}
    path.write_text(json.dumps(payload, indent=2) + "\n")
