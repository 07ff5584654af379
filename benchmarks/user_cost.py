"""CPU and memory of the harness's StreamingUser against Locust's HttpUser(stream=True) and a bare gevent socket.

Starts the bundled upstream alone, then, in the same run and one after the other (alternating, ``--rounds`` times),
a Locust process (Locust as a library, in a subprocess) with N users of one kind, each holding one stream. Once
every stream is open, the Locust process's CPU time is measured over a window. Three modes:

- slow: ``--streams`` streams at one token a second each: % of one core per 1,000 streams, and memory per open
  stream (the RSS the streams added, over their count). The bare socket, a greenlet per stream doing nothing but
  recv() on a plain gevent socket, is the floor any user class pays for waking once a second.
- fast: ``--fast-streams`` streams sent as fast as the reader takes them: tokens ingested per CPU-second.
- 1000/s: ``--paced-streams`` streams at 1,000 tokens a second each: tokens ingested per CPU-second.

Tokens are counted by the upstream (its ``tokens_produced`` over the window; what sits in socket buffers at either
end of the window is a few KiB per stream). Every user reads every byte; HttpUser and StreamingUser also find each
token (``iter_lines(chunk_size=None)`` and a test per line; the SSE decoder), the bare socket does not.

    python benchmarks/user_cost.py --streams 2000 --window 20 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

KINDS = ("streaming_user", "http_user", "raw_socket")
LABELS = {
    "streaming_user": "StreamingUser",
    "http_user": "HttpUser(stream=True)",
    "raw_socket": "bare gevent socket",
    "baseline": "StreamingUser, baseline",
}
MODES = {"slow": "1", "fast": "0", "1000/s": "1000"}
"""Mode -> the upstream's ``rate`` (tokens per second per stream; 0 = as fast as the reader takes them)."""


def child(kind: str, url: str, streams: int, rate: str, window_s: float, ramp_timeout_s: float) -> None:
    """Run in the Locust subprocess: open the streams, wait until all are open, measure CPU over the window."""
    import socket

    import gevent
    import psutil
    from locust import HttpUser, User, constant, task
    from locust.env import Environment

    from harness.load.streaming_user import Behaviour, StreamingUser

    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    path = f"/v1/chat/completions?rate={rate}"

    class Streaming(StreamingUser):
        behaviour = Behaviour(read="fast", idle_timeout_s=60, upstream=(("rate", rate),))
        wait_time = constant(0)

    class Http(HttpUser):
        wait_time = constant(0)

        @task
        def stream(self) -> None:
            tokens = 0
            with self.client.post(path, json=body, stream=True, catch_response=True) as response:
                # chunk_size=None: each HTTP chunk as it arrives. The default (512) has urllib3 wait until 512 bytes
                # came, so the client would see tokens late and wake half as often as a streaming client must.
                for line in response.iter_lines(chunk_size=None):
                    if line.startswith(b"data: {"):
                        tokens += 1
                response.success()

    class Raw(User):
        wait_time = constant(0)

        @task
        def stream(self) -> None:
            payload = json.dumps(body).encode()
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=60) as sock:
                sock.sendall(
                    b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (path.encode(), host.encode(), len(payload), payload)
                )
                while sock.recv(65536):
                    pass

    user = {"streaming_user": Streaming, "baseline": Streaming, "http_user": Http, "raw_socket": Raw}[kind]
    environment = Environment(user_classes=[user], host=url)
    runner = environment.create_local_runner()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    runner.start(streams, spawn_rate=min(streams, 500))
    deadline = time.monotonic() + ramp_timeout_s
    while _stats(url)["open_streams"] < streams and time.monotonic() < deadline:
        gevent.sleep(0.5)
    opened = _stats(url)["open_streams"]
    gevent.sleep(2.0)  # let the first reads settle
    tokens_before = _stats(url)["tokens_produced"]
    before, wall0 = process.cpu_times(), time.monotonic()
    gevent.sleep(window_s)
    after, wall1 = process.cpu_times(), time.monotonic()
    end = _stats(url)
    cpu_s = (after.user - before.user) + (after.system - before.system)
    result = {
        "kind": kind,
        "streams": streams,
        "open_at_start": opened,
        "open_at_end": end["open_streams"],
        "cpu_s": cpu_s,
        "window_s": wall1 - wall0,
        "tokens": end["tokens_produced"] - tokens_before,
        "rss_before_bytes": rss_before,
        "rss_bytes": process.memory_info().rss,
    }
    print(json.dumps(result), flush=True)
    runner.quit()
    os._exit(0)  # do not wait for thousands of greenlets to unwind


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/__harness/stats", timeout=60) as response:  # a busy upstream answers late
        stats: dict[str, Any] = json.load(response)
    return stats


def _wait_closed(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _stats(url)["open_streams"] and time.monotonic() < deadline:
        time.sleep(0.5)


def measure(kind: str, mode: str, streams: int, url: str, args: argparse.Namespace) -> dict[str, Any] | None:
    argv = [sys.executable, __file__, "--child", kind, "--url", url, "--streams", str(streams)]
    argv += ["--window", str(args.window), "--rate", MODES[mode]]
    env = dict(os.environ)
    if kind == "baseline":  # the harness of another checkout, imported ahead of this one
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(args.baseline), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=args.window + 150, check=False, env=env)
    except subprocess.TimeoutExpired:
        # Seen with the h11 StreamingUser on fast streams: a recv that always finds data never yields to the hub,
        # so the child's own timer greenlet never ends its window.
        print(f"{kind} {mode}: no figure, the Locust process did not end its window in {args.window + 150:.0f} s")
        return None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{kind} {mode}: no figure, its Locust process failed (exit {done.returncode}): {last}")
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    result["mode"] = mode
    result["core_percent"] = 100 * result["cpu_s"] / result["window_s"]
    result["core_percent_per_1000"] = result["core_percent"] / (streams / 1000)
    result["tokens_per_cpu_s"] = result["tokens"] / result["cpu_s"] if result["cpu_s"] > 0 else float("inf")
    result["kib_per_stream"] = (result["rss_bytes"] - result["rss_before_bytes"]) / 1024 / streams
    return result


def _line(round_index: int, result: dict[str, Any]) -> str:
    return (
        f"round {round_index + 1} {result['mode']:<6} {result['kind']:<15} streams open "
        f"{result['open_at_start']}/{result['streams']} (end {result['open_at_end']})  cpu {result['cpu_s']:.2f} s "
        f"in {result['window_s']:.1f} s = {result['core_percent']:.2f}% of a core  tokens {result['tokens']}  "
        f"rss +{(result['rss_bytes'] - result['rss_before_bytes']) / 2**20:.0f} MiB"
    )


def _kinds(results: dict[tuple[str, str], list[dict[str, Any]]], mode: str) -> list[str]:
    """The kinds measured at least once in ``mode``."""
    return list(dict.fromkeys(kind for (each, kind), runs in results.items() if each == mode and runs))


def _spread(values: list[float], fmt: str) -> str:
    """Median, and the range when there is more than one round."""
    median = format(statistics.median(values), fmt)
    if len(values) == 1:
        return median
    return f"{median} ({format(min(values), fmt)}..{format(max(values), fmt)})"


def summary(results: dict[tuple[str, str], list[dict[str, Any]]], args: argparse.Namespace) -> list[str]:
    """The table: medians over the rounds (range in brackets), then the ratios of the medians."""

    def median(mode: str, kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode, kind])

    lines: list[str] = []
    if "streaming_user" in _kinds(results, "slow"):
        key, kinds = "core_percent_per_1000", _kinds(results, "slow")
        lines.append(f"\nslow: {args.streams} streams, 1 token/s each; % of one core per 1,000 streams, RSS per stream")
        for kind in kinds:
            cpu = _spread([r[key] for r in results["slow", kind]], ".2f")
            kib = _spread([r["kib_per_stream"] for r in results["slow", kind]], ".1f")
            lines.append(f"  {LABELS[kind]:<24} {cpu:>20} %   {kib:>20} KiB/stream")
        ours = median("slow", "streaming_user", key)
        if "http_user" in kinds:
            lines.append(
                f"  ratio HttpUser / StreamingUser: {median('slow', 'http_user', key) / ours:.2f}x (goal >= 1.0)"
            )
        if "raw_socket" in kinds:
            lines.append(
                f"  StreamingUser / bare socket: {ours / median('slow', 'raw_socket', key):.2f}x (stretch <= 1.2)"
            )
        if "baseline" in kinds:
            lines.append(f"  baseline / StreamingUser: {median('slow', 'baseline', key) / ours:.2f}x")
        elif args.baseline:
            lines.append("  baseline: no figure (its Locust process failed or never ended its window)")
        at = "measured" if args.streams == 10_000 else f"linear from {args.streams}"
        lines.append(f"  StreamingUser at 10,000 streams, {at}: {ours * 10:.1f}% of one core (goal < 20%)")
    for mode, streams in (("fast", args.fast_streams), ("1000/s", args.paced_streams)):
        if "streaming_user" not in _kinds(results, mode):
            continue
        what, kinds = ("as fast as read" if mode == "fast" else "1,000 tokens/s each"), _kinds(results, mode)
        lines.append(f"\n{mode}: {streams} streams, {what}; tokens ingested per CPU-second, % of one core, tokens/s")
        for kind in kinds:
            rate = _spread([r["tokens_per_cpu_s"] for r in results[mode, kind]], ",.0f")
            core = _spread([r["core_percent"] for r in results[mode, kind]], ".1f")
            # What the upstream delivered: on a busy machine it may fall short of 1,000 tokens/s.
            each = _spread([r["tokens"] / r["window_s"] / r["streams"] for r in results[mode, kind]], ",.0f")
            lines.append(f"  {LABELS[kind]:<24} {rate:>28} tokens/CPU-s {core:>18} % {each:>18} tokens/s a stream")
        ours = median(mode, "streaming_user", "tokens_per_cpu_s")
        if "http_user" in kinds:
            theirs = median(mode, "http_user", "tokens_per_cpu_s")
            lines.append(f"  ratio StreamingUser / HttpUser: {ours / theirs:.2f}x (goal >= 1.0)")
        if "baseline" in kinds:
            lines.append(f"  StreamingUser / baseline: {ours / median(mode, 'baseline', 'tokens_per_cpu_s'):.2f}x")
        elif args.baseline:
            lines.append("  baseline: no figure (its Locust process failed or never ended its window)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000, help="slow streams per Locust process")
    parser.add_argument("--fast-streams", type=int, default=20, help="streams of the fast mode")
    parser.add_argument("--paced-streams", type=int, default=20, help="streams of the 1,000 tokens/s mode")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of CPU measurement per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind and mode, alternating")
    parser.add_argument("--modes", default="slow,fast,1000/s", help="comma-separated: slow, fast, 1000/s")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of the repository whose StreamingUser runs too, side by side"
    )
    parser.add_argument("--child", choices=(*KINDS, "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rate", default="1", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.url, args.streams, args.rate, args.window, ramp_timeout_s=180.0)
        return 0
    modes = [mode for mode in args.modes.split(",") if mode]
    if not modes or any(mode not in MODES for mode in modes):
        parser.error(f"--modes takes a comma-separated list of {', '.join(MODES)}, but got {args.modes!r}")

    from harness.launch.process import stop_all
    from harness.launch.stack import StackOptions, start_bundled_stack

    upstream_argv = ("--tokens", "1000000", "--token-bytes", "64", "--rate", "1", "--sndbuf", "0")
    options = StackOptions(relays=(), upstream_argv=upstream_argv + ("--write-high-water", "0"), ready_timeout_s=20)
    children = start_bundled_stack(options, Path(tempfile.mkdtemp(prefix="user-cost-")))
    streams = {"slow": args.streams, "fast": args.fast_streams, "1000/s": args.paced_streams}
    kinds = KINDS + (("baseline",) if args.baseline else ())
    if args.baseline and not (args.baseline / "harness" / "load" / "streaming_user.py").is_file():
        parser.error(f"--baseline takes a checkout of this repository, but {str(args.baseline)!r} has no harness/load")
    results: dict[tuple[str, str], list[dict[str, Any]]] = {(m, k): [] for m in MODES for k in kinds}
    failed: set[tuple[str, str]] = set()
    try:
        url = str(children[0].url)
        for round_index in range(args.rounds):
            for mode in modes:
                for kind in kinds:
                    if (mode, kind) in failed:
                        continue  # once is enough to show it
                    _wait_closed(url)  # the previous run's streams are gone before this one starts
                    result = measure(kind, mode, streams[mode], url, args)
                    if result is None:
                        failed.add((mode, kind))
                        continue
                    results[mode, kind].append(result)
                    print(_line(round_index, result), flush=True)
    finally:
        stop_all(children)
    print("\n".join(summary(results, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
