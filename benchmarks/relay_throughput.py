"""Fast-reader throughput of the eager, lazy and bounded relays against direct upstream reads, in one run.

Starts the bundled stack, then for several rounds reads one unpaced stream from each (in a shuffled order
each round, so load on the machine falls on all alike) and prints the median MB/s and tokens/s of each and
their ratios to the direct upstream. The lazy relay should be at least as fast as the eager one.

The client reads with an Ethernet-sized MSS (1448 B) and, side by side, with loopback's own (~64 KiB): with the
bundled servers' 4 KiB send buffers, loopback's MSS means the reader never gets two full-sized segments, its ACKs
wait on the delayed-ACK timer, and which relay stalls more depends on its write pattern, not on its design.

    python benchmarks/relay_throughput.py [--rounds 7] [--tokens 20000] [--token-bytes 1024] [--client-mss 1448 0]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from harness.launch.process import stop_all
from harness.launch.stack import StackOptions, add_stack_arguments, start_bundled_stack
from harness.load.stream_client import StreamConnection, split_url

NAMES = ("upstream", "eager", "lazy", "bounded")


def read_stream(url: str, tokens: int, token_bytes: int, mss: int = 0) -> tuple[float, int]:
    """Seconds and bytes to read one whole plain stream as fast as possible."""
    host, port, _ = split_url(url)
    connection = StreamConnection(host, port, mss_bytes=mss)
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
    parser.add_argument(
        "--client-mss",
        type=int,
        nargs="+",
        default=[1448, 0],
        help="client TCP_MAXSEG values to measure side by side; 0 = loopback's own (default: 1448 0)",
    )
    add_stack_arguments(parser)
    args = parser.parse_args()
    options = StackOptions.from_args(args, ("eager", "lazy", "bounded"))
    children = start_bundled_stack(options, Path(tempfile.mkdtemp(prefix="bench-throughput-")))
    urls = {child.name: str(child.url) for child in children}
    cases = [(name, mss) for mss in args.client_mss for name in NAMES]
    seconds: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    try:
        for name in NAMES:  # warm-up
            read_stream(urls[name], 1000, args.token_bytes)
        for _ in range(args.rounds):
            order = list(cases)
            random.shuffle(order)
            for name, mss in order:
                elapsed, total = read_stream(urls[name], args.tokens, args.token_bytes, mss)
                assert total == args.tokens * args.token_bytes, (name, total)
                seconds[(name, mss)].append(elapsed)
    finally:
        stop_all(children)
    megabytes = args.tokens * args.token_bytes / 1e6
    median = {case: statistics.median(values) for case, values in seconds.items()}
    print(
        f"{args.rounds} rounds of one {megabytes:.1f} MB stream ({args.tokens} tokens of {args.token_bytes} B), "
        f"server sndbuf {args.server_sndbuf} B, relay read buffer {args.relay_read_bufsize} B"
    )
    for mss in args.client_mss:
        label = f"client MSS {mss} B" if mss else "client MSS: loopback's own (~64 KiB)"
        print(f"\n{label}")
        print(f"{'target':<10}{'MB/s':>9}{'tokens/s':>12}{'vs upstream':>13}{'min-max MB/s':>18}")
        for name in NAMES:
            case = (name, mss)
            rate = megabytes / median[case]
            spread = f"{megabytes / max(seconds[case]):.0f}-{megabytes / min(seconds[case]):.0f}"
            ratio = median[("upstream", mss)] / median[case]
            print(f"{name:<10}{rate:>9.1f}{args.tokens / median[case]:>12.0f}{ratio:>13.2f}{spread:>18}")
        print(
            f"lazy / eager throughput: {median[('eager', mss)] / median[('lazy', mss)]:.2f}  "
            f"bounded / eager: {median[('eager', mss)] / median[('bounded', mss)]:.2f}"
        )


if __name__ == "__main__":
    main()
