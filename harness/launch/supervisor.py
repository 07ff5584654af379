"""A watchdog that outlives the harness: when the harness process dies (even by SIGKILL), everything it started
goes too, within a couple of seconds.

``PR_SET_PDEATHSIG`` reaches only a launched command itself, not what it started: an ``sh -c`` grandchild, a
multi-worker uvicorn's workers, multiprocessing's resource tracker. So the harness starts this small process
(``python -m harness.launch.supervisor PID``, in a session of its own so a signal to the harness's process group
does not reach it) with a pipe on its stdin. While the harness lives, it records every descendant of PID every
SCAN_INTERVAL_S (PID and start time, so a reused PID is never hit) and their process groups. When the pipe closes
(the harness exited, however it ended) or PID is gone, it sends SIGTERM to every recorded process still alive and
every process left in a recorded process group (a grandchild whose parent exited keeps its group), SIGKILL to
whatever is left after KILL_GRACE_S, and exits. The harness's own process group is never signalled as a group
(in a shell it holds the user's pipeline, ``locust ... | tee``).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

import psutil

__all__ = ["Supervisor", "main"]

SCAN_INTERVAL_S = 0.25
KILL_GRACE_S = 1.0


class Supervisor:
    """The harness's end of the watchdog: start it before launching anything, ``close`` it after the stop."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "harness.launch.supervisor", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def close(self, timeout_s: float = 5.0) -> None:
        """Let it clean up what is left and exit (bounded)."""
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=timeout_s)


def _record(parent: psutil.Process, seen: dict[int, float], groups: set[int], skip: set[int]) -> None:
    with contextlib.suppress(psutil.Error):
        for process in parent.children(recursive=True):
            with contextlib.suppress(psutil.Error, OSError):
                if process.pid in skip:
                    continue
                seen[process.pid] = process.create_time()
                groups.add(os.getpgid(process.pid))


def _survivors(seen: dict[int, float], groups: set[int], since: float) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for pid, started in seen.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE:
                found[pid] = process
    if groups:
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if process.pid != os.getpid() and os.getpgid(process.pid) in groups:
                    # started after the harness: a group id reused by an unrelated process is left alone
                    if process.create_time() >= since and process.status() != psutil.STATUS_ZOMBIE:
                        found[process.pid] = process
    return list(found.values())


def _clean_up(seen: dict[int, float], groups: set[int], since: float) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        left = _survivors(seen, groups, since)
        if not left:
            return
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signum)
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline and _survivors(seen, groups, since):
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        parent = psutil.Process(int(args[0]))
        parent_started = parent.create_time()
        parent_group = os.getpgid(parent.pid)
    except (IndexError, ValueError, psutil.Error, OSError):
        sys.stderr.write(f"usage: python -m harness.launch.supervisor PID (a live process), got {args!r}\n")
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the harness is not for the watchdog
    seen: dict[int, float] = {}
    groups: set[int] = set()
    skip = {os.getpid()}
    stdin = sys.stdin.buffer
    while True:
        _record(parent, seen, groups, skip)
        ready, _, _ = select.select([stdin], [], [], SCAN_INTERVAL_S)
        if ready and not os.read(stdin.fileno(), 4096):
            break  # the pipe closed: the harness exited or is done
        try:
            if parent.create_time() != parent_started or parent.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.Error:
            break
    groups.discard(parent_group)
    groups.discard(os.getpgid(0))
    _clean_up(seen, groups, parent_started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
