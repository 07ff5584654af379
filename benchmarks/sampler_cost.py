"""CPU cost of the samplers per tick and per second at 4 Hz, with 10, 1,000 and 4,000 sockets open on loopback.

    /work/.venv/bin/python benchmarks/sampler_cost.py [--sockets 10,1000,4000] [--seconds 4]

Starts the bundled stack (upstream, eager, lazy, bounded: the four targets a bundled run samples) and, in a helper
process, N idle TCP sockets on loopback (N/2 connections, both ends open). Two layouts of those sockets:

    elsewhere     connections to a port nobody samples: the kernel's port filter (netlink, ss) skips them
    to-upstream   connections to the upstream's own port, from a process that is not a target: every listing
                  returns them and the counter must attribute each one (the worst case for it)

For each, it measures side by side: the process sampler alone, each connection-counting method alone (netlink,
ss, psutil), the stats poller alone, then the whole Sampler ticking at 4 Hz (as a run uses it, netlink). CPU is
this process's user+system time plus that of the children it reaped (ss), so a subprocess's cost counts; the
targets' own CPU to answer /__harness/stats is not included. Figures are noisy on a shared 2-core machine:
compare the columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.capture.connections import ConnectionCounter
from harness.capture.process_sampler import ProcessSampler
from harness.capture.sampling import SampledTarget, Sampler
from harness.capture.stats_poller import StatsPoller, StatsTarget
from harness.capture.tcp_sockets import METHODS
from harness.launch.process import stop_all
from harness.launch.stack import StackOptions, start_bundled_stack
from harness.load.stream_client import split_url
from harness.runfolder import RunFolder

RATE_HZ = 4.0

_HELPER = r"""
import socket, sys, time
count, port = int(sys.argv[1]), int(sys.argv[2])
listener = None
if port == 0:
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = listener.getsockname()[1]
clients, accepted = [], []
for _ in range(count):
    clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    if listener is not None:
        accepted.append(listener.accept()[0])
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin (or dies: then stdin reads EOF too)
"""


def _cpu_s() -> float:
    """User+system CPU of this process (all threads) and of its reaped children, in microsecond resolution."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _per_tick_ms(work: Callable[[], object], ticks: int) -> float:
    work()  # warm: first psutil reads, first cpu_percent, first rescan of the descriptors
    before = _cpu_s()
    for _ in range(ticks):
        work()
    return (_cpu_s() - before) / ticks * 1000


def _row(label: str, per_tick_ms: float) -> str:
    percent = per_tick_ms * RATE_HZ / 1000 * 100
    return f"  {label:<34} {per_tick_ms:8.2f} ms/tick  {per_tick_ms * RATE_HZ:8.2f} ms/s  {percent:6.2f}% of a core"


class IdleSockets:
    """N idle loopback sockets held by a helper process; closed (helper ends) on exit."""

    def __init__(self, sockets: int, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HELPER, str(max(1, sockets // 2)), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"socket helper failed to open {sockets} sockets (said {line!r})")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def measure(targets: list[SampledTarget], ticks: int, seconds: float, root: Path) -> None:
    pid_targets = [(t.name, t.pid) for t in targets if t.pid is not None]
    watched = [(t.name, t.pid, t.upstream_port) for t in targets if t.pid is not None and t.upstream_port is not None]
    processes = ProcessSampler(pid_targets)
    print(
        _row(
            f"process sampler ({len(pid_targets)} targets)", _per_tick_ms(lambda: processes.sample(time.time()), ticks)
        )
    )
    for method in METHODS:
        counter = ConnectionCounter(watched, prefer=method)
        if counter.method != method:
            print(f"  connections/{method}: unavailable here ({counter.method_reason})")
            continue
        n = ticks if method != "psutil" else max(4, ticks // 5)
        print(_row(f"connections/{method} ({len(watched)} targets)", _per_tick_ms(counter.count, n)))
        counter.close()
    poller = StatsPoller([StatsTarget(t.name, t.url) for t in targets if t.url], timeout_s=1.0)

    def poll() -> None:
        poller.collect(time.time(), poller.begin(), time.monotonic() + 1.0)

    print(_row(f"stats poller ({len(poller.targets)} targets)", _per_tick_ms(poll, ticks)))
    poller.close()
    folder = RunFolder.create(root, "sampler-cost")
    sampler = Sampler(folder, targets, interval_s=1 / RATE_HZ)
    sampler.start()
    time.sleep(1.0)  # past the first ticks (psutil objects made, descriptors read once)
    ticks_before = _ticks(sampler)
    before_cpu, before_wall = _cpu_s(), time.monotonic()
    time.sleep(seconds)
    cpu_s, wall_s = _cpu_s() - before_cpu, time.monotonic() - before_wall
    ticks = _ticks(sampler) - ticks_before
    sampler.stop()
    folder.finish()
    meta = folder.read_meta()["sampler"]
    tick_ms = cpu_s / max(1, ticks) * 1000
    print(
        f"  {'whole Sampler at 4 Hz (' + str(meta['connections_method']) + ')':<34} {tick_ms:8.2f} ms/tick  "
        f"{cpu_s / wall_s * 1000:8.2f} ms/s  {cpu_s / wall_s * 100:6.2f}% of a core  "
        f"({ticks} ticks in {wall_s:.1f} s, {meta['overruns']} overruns)"
    )


def _ticks(sampler: Sampler) -> int:
    return int(sampler.ticks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default="10,1000,4000", help="socket counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=4.0, help="how long the whole Sampler runs per case")
    parser.add_argument("--ticks", type=int, default=40, help="ticks per component measurement")
    args = parser.parse_args()
    counts = [int(text) for text in args.sockets.split(",")]
    if any(count < 1 or count > 8000 for count in counts):
        parser.error(f"--sockets takes counts from 1 to 8000, but got {args.sockets!r}")
    with tempfile.TemporaryDirectory(prefix="sampler-cost-") as tmp:
        children = start_bundled_stack(StackOptions(), Path(tmp) / "logs")
        try:
            by_name = {child.name: child for child in children}
            upstream_url = str(by_name["upstream"].url)
            upstream_port = split_url(upstream_url)[1]
            targets = [SampledTarget("upstream", "upstream", upstream_url, by_name["upstream"].pid, None)]
            targets += [
                SampledTarget(name, "relay", str(by_name[name].url), by_name[name].pid, upstream_port)
                for name in ("eager", "lazy", "bounded")
            ]
            print(f"sampler cost at {RATE_HZ:g} Hz, 4 targets; CPU = this process + reaped children")
            for layout, port in (("elsewhere", 0), ("to-upstream", upstream_port)):
                for count in counts:
                    print(f"{count} idle sockets open on loopback, {layout}:")
                    idle = IdleSockets(count, port)
                    try:
                        measure(targets, args.ticks, args.seconds, Path(tmp) / "runs")
                    finally:
                        idle.close()
        finally:
            stop_all(children, grace_s=3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
