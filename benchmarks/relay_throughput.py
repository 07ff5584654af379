"""Fast-reader throughput of the eager, lazy and bounded relays against direct upstream reads, in one run.

Starts the bundled stack, then for several rounds reads one unpaced stream from each (in a shuffled order
each round, so load on the machine falls on all alike) and prints the median MB/s and tokens/s of each and
their ratios to the direct upstream. The lazy relay should be at least as fast as the eager one.

    python benchmarks/relay_throughput.py [--rounds 7] [--tokens 20000] [--token-bytes 1024]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from harness.launch import stop_all
from harness.stack import StackOptions, add_stack_arguments, start_bundled_stack
from harness.stream_client import StreamConnection, split_url

NAMES = ("upstream", "eager", "lazy", "bounded")


def read_stream(url: str, tokens: int, token_bytes: int) -> tuple[float, int]:
    """Seconds and bytes to read one whole plain stream as fast as possible."""
    host, port, _ = split_url(url)
    connection = StreamConnection(host, port)
    started = time.perf_counter()
    connection.send_request("GET", f"/v1/stream?tokens={tokens}&token_bytes={token_bytes}&rate=0", {})
    connection.read_head(timeout_s=30)
    total = 0
    while (chunk := connection.read(262144, timeout_s=30)) is not None:
        total += len(chunk)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--token-bytes", type=int, default=1024)
    add_stack_arguments(parser)
    args = parser.parse_args()
    options = StackOptions.from_args(args, ("eager", "lazy", "bounded"))
    children = start_bundled_stack(options, Path(tempfile.mkdtemp(prefix="bench-throughput-")))
    urls = {child.name: str(child.url) for child in children}
    seconds: dict[str, list[float]] = {name: [] for name in NAMES}
    try:
        for name in NAMES:  # warm-up
            read_stream(urls[name], 1000, args.token_bytes)
        for _ in range(args.rounds):
            order = list(NAMES)
            random.shuffle(order)
            for name in order:
                elapsed, total = read_stream(urls[name], args.tokens, args.token_bytes)
                assert total == args.tokens * args.token_bytes, (name, total)
                seconds[name].append(elapsed)
    finally:
        stop_all(children)
    megabytes = args.tokens * args.token_bytes / 1e6
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(
        f"{args.rounds} rounds of one {megabytes:.1f} MB stream ({args.tokens} tokens of {args.token_bytes} B), "
        f"server sndbuf {args.server_sndbuf} B, relay read buffer {args.relay_read_bufsize} B"
    )
    print(f"{'target':<10}{'MB/s':>9}{'tokens/s':>12}{'vs upstream':>13}{'min-max MB/s':>18}")
    for name in NAMES:
        rate = megabytes / median[name]
        spread = f"{megabytes / max(seconds[name]):.0f}-{megabytes / min(seconds[name]):.0f}"
        print(
            f"{name:<10}{rate:>9.1f}{args.tokens / median[name]:>12.0f}{median['upstream'] / median[name]:>13.2f}"
            f"{spread:>18}"
        )
    print(
        f"lazy / eager throughput: {median['eager'] / median['lazy']:.2f}  "
        f"bounded / eager: {median['eager'] / median['bounded']:.2f}"
    )


if __name__ == "__main__":
    main()
