"""What the tracemalloc probe costs a relay: throughput with and without it, and the stall of one snapshot.

    python benchmarks/probe_cost.py [--relay lazy] [--nframe 1] [--readers 4] [--seconds 3] [--rounds 3]

Starts two bundled stacks side by side (the relay plain, and under the probe), then alternates rounds of fast
readers between them so both see the same machine load; prints MB/s per round and the ratio of medians. Then,
with 20 stalled readers holding the relay's buffers, takes a snapshot (with its census) and reports how long the
relay's /__harness/stats took to answer meanwhile: the stall the event loop felt. Figures are noisy on a shared
machine; read the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from harness.capture.probe_client import ProbeClient
from harness.launch.process import ChildProcess, stop_all
from harness.launch.stack import StackOptions, add_stack_arguments, start_bundled_stack
from harness.load.stream_client import StreamConnection, split_url


def _options(relay: str, nframe: int) -> StackOptions:
    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    args = parser.parse_args(
        ["--upstream-rate", "0", "--upstream-token-bytes", "1024", "--profile-nframe", str(nframe)]
    )
    return StackOptions.from_args(args, (relay,))


def _read_fast(url: str, seconds: float, totals: list[int], index: int) -> None:
    host, port, _ = split_url(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection = StreamConnection(host, port)
        try:
            connection.send_request("GET", "/v1/stream?tokens=1000000&rate=0&token_bytes=1024", {})
            connection.read_head(timeout_s=10)
            while time.monotonic() < deadline:
                chunk = connection.read(262144, timeout_s=10)
                if chunk is None:
                    break
                totals[index] += len(chunk)
        finally:
            connection.close(reset=True)


def throughput_mb_s(url: str, readers: int, seconds: float) -> float:
    totals = [0] * readers
    threads = [threading.Thread(target=_read_fast, args=(url, seconds, totals, i)) for i in range(readers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return sum(totals) / (time.monotonic() - started) / 1e6


def snapshot_stall(child: ChildProcess, folder: Path) -> tuple[float, float, float]:
    """(snapshot request s, longest stats latency s during it, stats latency s when idle), with 20 stalled readers."""
    host, port, _ = split_url(str(child.url))
    connections = []
    try:
        for index in range(20):
            connection = StreamConnection(host, port, rcvbuf_bytes=4096)
            connection.send_request("GET", f"/v1/stream?tokens=2000&rate=0&token_bytes=1024&i={index}", {})
            connections.append(connection)
        time.sleep(2.0)

        def latency() -> float:
            started = time.perf_counter()
            with urllib.request.urlopen(f"{child.url}/__harness/stats", timeout=30) as response:
                response.read()
            return time.perf_counter() - started

        idle = min(latency() for _ in range(5))
        probe = ProbeClient.for_child(child)
        latencies: list[float] = []
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                latencies.append(latency())

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.1)
        taken = probe.snapshot(folder / "bench.tracemalloc", folder / "bench.census.json")
        done.set()
        poller.join(30)
        return taken.took_s, max(latencies), idle
    finally:
        for connection in connections:
            connection.close(reset=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # not eager: its abandoned upstream streams keep running after each round, so later rounds measure that
    parser.add_argument("--relay", default="lazy", choices=("lazy", "bounded"))
    parser.add_argument("--nframe", type=int, default=1)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="probe-cost-"))
    children: list[ChildProcess] = []
    try:
        plain = start_bundled_stack(_options(args.relay, 0), folder / "plain")
        children += plain
        probed = start_bundled_stack(_options(args.relay, args.nframe), folder / "probed")
        children += probed
        urls = {"plain": str(plain[1].url), f"nframe={args.nframe}": str(probed[1].url)}
        figures: dict[str, list[float]] = {name: [] for name in urls}
        for round_ in range(args.rounds):
            for name, url in urls.items():
                figures[name].append(throughput_mb_s(url, args.readers, args.seconds))
                print(f"round {round_ + 1}: {args.relay} {name:<9} {figures[name][-1]:7.1f} MB/s", flush=True)
        medians = {name: statistics.median(values) for name, values in figures.items()}
        plain_mb_s, probed_mb_s = medians.values()
        print(f"median: plain {plain_mb_s:.1f} MB/s, under the probe {probed_mb_s:.1f} MB/s", end="")
        print(f" ({plain_mb_s / probed_mb_s:.1f}x slower)" if probed_mb_s else "")
        took_s, stalled_s, idle_s = snapshot_stall(probed[1], folder)
        print(
            f"snapshot + census with 20 stalled readers: request {took_s * 1000:.0f} ms; "
            f"/__harness/stats answered in {idle_s * 1000:.1f} ms idle, up to {stalled_s * 1000:.0f} ms meanwhile"
        )
    finally:
        stop_all(children)
    return 0


if __name__ == "__main__":
    sys.exit(main())
