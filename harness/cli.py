"""The ``harness`` command: ``harness serve`` (more subcommands join as they are built).

``main(argv) -> int`` catches HarnessError, prints its one line to stderr and returns its exit code.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from harness import __version__
from harness.capture.agent import add_agent_arguments, run_agent
from harness.capture.probe import add_probe_arguments, run_probe
from harness.errors import HarnessError, UsageError
from harness.gate.config import configured_limits, options_from_args
from harness.gate.flags import add_gate_arguments
from harness.launch.process import ChildProcess, stop_all, write_servers_json
from harness.launch.stack import (
    BUNDLED_RELAYS,
    StackOptions,
    add_stack_arguments,
    parse_target_names,
    start_bundled_stack,
)
from harness.units import argparse_type, check_writable, parse_duration, probability, share

__all__ = ["main"]


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _serve(args: argparse.Namespace) -> int:
    relays: tuple[str, ...] = () if args.upstream_only else args.targets
    options = StackOptions.from_args(args, relays)
    # Without --log-dir the logs go to a temporary folder that goes with the stack (nothing left in the temp dir).
    temporary = None if args.log_dir else Path(tempfile.mkdtemp(prefix="stream-harness-"))
    log_dir = Path(args.log_dir) if args.log_dir else temporary
    assert log_dir is not None
    previous = {signum: signal.signal(signum, _raise_stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    children: list[ChildProcess] = []
    try:
        children = start_bundled_stack(options, log_dir)
        for child in children:
            print(f"{child.name:<9} {child.url}  pid={child.pid}", flush=True)
        if args.json:
            write_servers_json(Path(args.json), children)
        kept = " (removed when it stops; --log-dir keeps them)" if temporary is not None else ""
        print(f"logs in {log_dir}{kept}; Ctrl-C stops everything", file=sys.stderr, flush=True)
        while True:
            for child in children:
                child.check_alive()
            time.sleep(0.2)
    except _Stop:
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        stop_all(children)
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _report(args: argparse.Namespace) -> int:
    from harness.report.html import write_report  # pandas and plotly load only for the commands that need them

    print(write_report(Path(args.run_dir), configured_limits()))  # ./pyproject.toml's [tool.harness.gate], as the gate
    return 0


def _compare(args: argparse.Namespace) -> int:
    from harness.report.compare import write_comparison
    from harness.report.compare_stats import CompareLimits

    if len(args.run_dirs) < 2:
        raise UsageError(f"compare needs at least two run folders, but got {len(args.run_dirs)}: {args.run_dirs[0]!r}")
    limits = CompareLimits(alpha=args.alpha, large_share=args.min_change, large_ms=args.min_change_s * 1000.0)
    print(write_comparison([Path(folder) for folder in args.run_dirs], Path(args.out), limits))
    return 0


def _gate(args: argparse.Namespace) -> int:
    from harness.gate.run import run_gate  # pandas loads only for the commands that need it

    return run_gate(Path(args.run_dir), options_from_args(args))


def _relay_names(text: str) -> tuple[str, ...]:
    return parse_target_names(text, what="--targets")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Load, server memory and upstream connections of streaming endpoints."
    )
    parser.add_argument("--version", action="version", version=f"stream-harness {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the bundled stack (fake upstream and relays) until Ctrl-C",
        description="Start the fake upstream and the chosen relays on loopback, print one URL per server, "
        "and stop them all on Ctrl-C or SIGTERM.",
    )
    serve.add_argument(
        "--targets",
        type=argparse_type(lambda text, what: _relay_names(text), "--targets"),
        default=BUNDLED_RELAYS,
        help=f"relays to run, comma-separated (default: {','.join(BUNDLED_RELAYS)})",
    )
    serve.add_argument("--upstream-only", action="store_true", help="run only the fake upstream")
    serve.add_argument("--json", metavar="FILE", help="also write each server's name, URL and PID to FILE")
    serve.add_argument(
        "--log-dir", metavar="DIR", help="where the servers' logs go (default: a temporary folder removed at the end)"
    )
    add_stack_arguments(serve)
    serve.set_defaults(run=_serve)
    agent = commands.add_parser(
        "agent",
        help="sample a server's process and upstream connections and serve the rows over HTTP",
        description="Run the samplers next to a server on this host (for distributed runs): write a run folder "
        "here and serve its rows as JSON at /samples?since=T until Ctrl-C or SIGTERM.",
    )
    add_agent_arguments(agent)
    agent.set_defaults(run=run_agent)
    probe = commands.add_parser(
        "probe",
        help="run a Python server under tracemalloc with a token-guarded control endpoint",
        description="Run a Python program in this process with tracemalloc started before it is imported, and "
        "serve its traced memory and snapshots on 127.0.0.1 (token from STREAM_HARNESS_PROBE_TOKEN).",
    )
    add_probe_arguments(probe)
    probe.set_defaults(run=run_probe)
    report = commands.add_parser(
        "report",
        help="analyse a run folder and write its summary.json and self-contained report.html",
        description="Analyse RUN_DIR, write summary.json and report.html into it and print the report's path. "
        "An interrupted run gets a report of what was measured, marked incomplete.",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (reports/<scenario>-<time>)")
    report.set_defaults(run=_report)
    compare = commands.add_parser(
        "compare",
        help="write one report setting several runs side by side, differences highlighted",
        description="Analyse each run folder (without writing into them) and write one self-contained page "
        "comparing them with the first; print its path.",
    )
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders; the first is the reference")
    compare.add_argument("--out", default="compare.html", metavar="FILE", help="where to write (default: compare.html)")
    compare.add_argument(
        "--alpha",
        type=argparse_type(probability, "--alpha"),
        default=0.05,
        help="chance of any false mark on the page, after Holm's correction (default: 0.05)",
    )
    compare.add_argument(
        "--min-change",
        type=argparse_type(share, "--min-change"),
        default=0.5,
        metavar="SHARE",
        help="a marked change moves the median by at least this share, e.g. 50%% (default: 50%%)",
    )
    compare.add_argument(
        "--min-change-time",
        dest="min_change_s",
        type=argparse_type(parse_duration, "--min-change-time"),
        default=0.02,
        metavar="DURATION",
        help="...and a time by at least this much, e.g. 20ms (default: 20ms)",
    )
    compare.set_defaults(run=_compare)
    gate = commands.add_parser(
        "gate",
        help="judge a run folder against limits (and a baseline): exit 0 pass, 1 fail, 2 bad input",
        description="Analyse RUN_DIR and judge each target: memory growth, leaked upstream streams, cancellation "
        "latency, tokens produced after clients left, and regression against a baseline. Limits come from "
        "[tool.harness.gate] in pyproject.toml, then from these flags. Exit 0 pass, 1 fail, 2 bad input.",
    )
    add_gate_arguments(gate)
    gate.set_defaults(run=_gate)
    return parser


_OUTPUTS = {
    "serve": {"log_dir": ("--log-dir", True), "json": ("--json", False)},
    "agent": {"out": ("--out", True)},
    "compare": {"out": ("--out", False)},
    "gate": {
        "junit": ("--junit", False),
        "markdown": ("--markdown", False),
        "save_baseline": ("--save-baseline", False),
    },
}
"""Where each command writes (dest: flag, is a folder): refused before it starts when it cannot be written."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        command = args.command if isinstance(args.command, str) else "probe"  # (probe's own COMMAND takes the dest)
        check_writable(args, _OUTPUTS.get(command, {}))
        code: int = args.run(args)
    except UsageError as error:
        parser.exit(error.exit_code, f"harness: error: {error}\n")
    except HarnessError as error:
        print(f"harness: error: {error}", file=sys.stderr)
        return error.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
