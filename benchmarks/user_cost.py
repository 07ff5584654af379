"""CPU cost of slow streams: the harness's StreamingUser against Locust's HttpUser with stream=True.

Starts the bundled upstream alone at one token per second per stream, then, in the same run and one after the
other (alternating, ``--rounds`` times), a Locust process (Locust as a library, in a subprocess) with N users of
each kind, each holding one stream that brings a token, so one read, every second. A third kind, a bare gevent
socket that only calls recv(), is the floor any user class pays for waking once a second. Once every stream is open,
the Locust process's CPU time is measured over a window. Prints CPU per 1,000 streams for both and their ratio.

    python benchmarks/user_cost.py --streams 2000 --window 20 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

KINDS = ("streaming_user", "http_user", "raw_socket")
"""raw_socket is the floor: a greenlet per stream doing nothing but recv() on a plain gevent socket."""


def child(kind: str, url: str, streams: int, window_s: float, ramp_timeout_s: float) -> None:
    """Run in the Locust subprocess: open the streams, wait until all are open, measure CPU over the window."""
    import socket

    import gevent
    import psutil
    from locust import HttpUser, User, constant, task
    from locust.env import Environment

    from harness.load.streaming_user import Behaviour, StreamingUser

    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    tokens = [0]

    class Streaming(StreamingUser):
        behaviour = Behaviour(read="fast", idle_timeout_s=60)
        wait_time = constant(0)

    class Http(HttpUser):
        wait_time = constant(0)

        @task
        def stream(self) -> None:
            with self.client.post("/v1/chat/completions", json=body, stream=True, catch_response=True) as response:
                # chunk_size=None: each HTTP chunk as it arrives. The default (512) has urllib3 wait until 512 bytes
                # came, so the client would see tokens late and wake half as often as a streaming client must.
                for line in response.iter_lines(chunk_size=None):
                    if line.startswith(b"data: {"):
                        tokens[0] += 1
                response.success()

    class Raw(User):
        wait_time = constant(0)

        @task
        def stream(self) -> None:
            payload = json.dumps(body).encode()
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=60) as sock:
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (host.encode(), len(payload), payload)
                )
                while sock.recv(65536):
                    pass

    user = {"streaming_user": Streaming, "http_user": Http, "raw_socket": Raw}[kind]
    environment = Environment(user_classes=[user], host=url)
    runner = environment.create_local_runner()
    runner.start(streams, spawn_rate=min(streams, 500))
    deadline = time.monotonic() + ramp_timeout_s
    while _open_streams(url) < streams and time.monotonic() < deadline:
        gevent.sleep(0.5)
    opened = _open_streams(url)
    gevent.sleep(2.0)  # let the first reads settle
    process = psutil.Process()
    before, wall0 = process.cpu_times(), time.monotonic()
    gevent.sleep(window_s)
    after, wall1 = process.cpu_times(), time.monotonic()
    still_open = _open_streams(url)
    cpu_s = (after.user - before.user) + (after.system - before.system)
    print(
        json.dumps(
            {
                "kind": kind,
                "streams": streams,
                "open_at_start": opened,
                "open_at_end": still_open,
                "cpu_s": cpu_s,
                "window_s": wall1 - wall0,
                "rss_bytes": process.memory_info().rss,
            }
        ),
        flush=True,
    )
    runner.quit()
    os._exit(0)  # do not wait for thousands of greenlets to unwind


def _open_streams(url: str) -> int:
    with urllib.request.urlopen(url + "/__harness/stats", timeout=10) as response:
        return int(json.load(response)["open_streams"])


def measure(kind: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", kind, "--url", url, "--streams", str(args.streams)]
    argv += ["--window", str(args.window)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=args.window + 300, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{kind} run failed (exit {done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    # percent of one core per 1,000 streams
    result["core_percent_per_1000"] = 100 * result["cpu_s"] / result["window_s"] / (result["streams"] / 1000)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000, help="concurrent streams per Locust process")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of CPU measurement per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind, alternating")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.url, args.streams, args.window, ramp_timeout_s=120.0)
        return 0

    from harness.launch.process import stop_all
    from harness.launch.stack import StackOptions, start_bundled_stack

    upstream_argv = ("--tokens", "100000", "--token-bytes", "64", "--rate", "1", "--sndbuf", "0")
    options = StackOptions(relays=(), upstream_argv=upstream_argv + ("--write-high-water", "0"), ready_timeout_s=20)
    children = start_bundled_stack(options, Path(tempfile.mkdtemp(prefix="user-cost-")))
    try:
        url = str(children[0].url)
        results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for round_index in range(args.rounds):
            for kind in KINDS:
                result = measure(kind, url, args)
                results[kind].append(result)
                print(
                    f"round {round_index + 1} {kind:<15} streams open {result['open_at_start']}/{result['streams']} "
                    f"(end {result['open_at_end']})  cpu {result['cpu_s']:.2f} s in {result['window_s']:.1f} s  "
                    f"= {result['core_percent_per_1000']:.2f}% of a core per 1,000 streams  "
                    f"rss {result['rss_bytes'] / 2**20:.0f} MiB",
                    flush=True,
                )
                time.sleep(2.0)  # let the upstream close the previous streams
    finally:
        stop_all(children)
    ours = min(r["core_percent_per_1000"] for r in results["streaming_user"])
    theirs = min(r["core_percent_per_1000"] for r in results["http_user"])
    floor = min(r["core_percent_per_1000"] for r in results["raw_socket"])
    print(f"\nStreamingUser: {ours:.2f}% of one core per 1,000 slow streams (best of {args.rounds})")
    print(f"HttpUser(stream=True): {theirs:.2f}% of one core per 1,000 slow streams (best of {args.rounds})")
    print(f"bare gevent socket (floor): {floor:.2f}% of one core per 1,000 slow streams (best of {args.rounds})")
    print(f"ratio HttpUser / StreamingUser: {theirs / ours:.2f}x (goal >= 2)")
    print(f"StreamingUser at 10,000 streams (linear): {ours * 10:.1f}% of one core (goal < 25%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
