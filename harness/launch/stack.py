"""The bundled stack: the fake upstream and the chosen relays, launched as child processes on loopback.

Owns the stack's flags (shared by ``harness serve`` and the Locust plugin, so both speak one vocabulary) and
their translation into the targets' own command lines. Flags are validated here, before anything is launched.
With profiling on (``--profile-nframe N``), each relay runs under the tracemalloc probe (``harness.capture.probe``);
``ProbeClient.for_child(child)`` finds it. The upstream, the instrument, never does.

Each target gets its own fake upstream process, named ``upstream@<target>`` (:func:`upstream_name`), so the
upstream's own books (open streams, per-stream records) are that target's alone: no attribution by ids or by time
is needed to say whose an upstream stream is. Bundled relays get theirs here (:func:`start_bundled_stack`), the
user's launched and attached targets through :func:`start_upstreams`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.capture.probe_client import ProbeLaunch
from harness.errors import UsageError
from harness.launch.process import ChildProcess, LaunchSpec, stop_all
from harness.load.upstream_behaviour import CONTROL_TOKEN_ENV, control_token
from harness.runfolder import UPSTREAM_PREFIX, owner_of, upstream_name
from harness.units import argparse_type, parse_duration, parse_size

__all__ = [
    "BUNDLED_RELAYS",
    "UPSTREAM_PREFIX",
    "StackOptions",
    "add_stack_arguments",
    "owner_of",
    "parse_target_names",
    "start_bundled_stack",
    "start_upstreams",
    "upstream_name",
]

BUNDLED_RELAYS = ("eager", "lazy", "bounded")  # keep in step with targets.BUNDLED_RELAYS (not imported: aiohttp)


def parse_target_names(text: str, *, what: str = "--targets") -> tuple[str, ...]:
    """``"eager,lazy"`` -> ("eager", "lazy"); unknown or repeated names are rejected."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in BUNDLED_RELAYS]
    if unknown or not names:
        raise UsageError(
            f"{what} takes bundled target names from {', '.join(BUNDLED_RELAYS)} separated by commas, but got {text!r}"
        )
    if len(set(names)) != len(names):
        raise UsageError(f"{what} names a target twice: {text!r}")
    return names


def _count(text: str, *, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"{what} must be a whole number >= 0, but got {text!r}")
    return value


UPSTREAM_LIMITS = {"tokens": 1_000_000, "token_bytes": 65_536, "rate": 1_000_000.0, "delay": 600.0}
"""Keep in step with targets.upstream.settings.LIMITS (not imported: aiohttp); a test compares them."""
MAX_BUFFER_BYTES = 1 << 30
"""Socket and buffer sizes above this are refused here rather than by the kernel (or an OverflowError) later."""
MSS_RANGE = (88, 32767)
"""Linux's TCP_MAXSEG bounds (TCP_MIN_MSS, MAX_TCP_WINDOW); 0 keeps loopback's own."""


def _shown(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _within(parse: Any, low: float, high: float, *, zero: bool = False, unit: str = "") -> Any:
    """``parse``, then refuse values outside ``low``..``high`` (or 0, with ``zero``), naming the range."""

    def check(text: str, *, what: str) -> Any:
        value = parse(text, what=what)
        if not (low <= value <= high or (zero and value == 0)):
            allowed = f"0 or from {_shown(low)} to {_shown(high)}" if zero else f"from {_shown(low)} to {_shown(high)}"
            raise UsageError(f"{what} must be {allowed}{unit}, but got {text!r}")
        return value

    return check


def _rate(text: str, *, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UsageError(f"{what} must be a number of tokens per second >= 0 (0 = unpaced), but got {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class _Flag:
    flag: str
    dest: str
    parse: Any
    default: Any
    help: str
    child_flag: str
    """The flag of the target's own command line that receives the value."""
    to: str
    """'upstream', 'relay' or 'all'."""


# (the target flag each maps to, and why its default, are documented in the README)
_FLAGS = (
    _Flag(
        "--upstream-tokens",
        "upstream_tokens",
        _within(_count, 0, UPSTREAM_LIMITS["tokens"]),
        200,
        "tokens per stream",
        "--tokens",
        "upstream",
    ),
    _Flag(
        "--upstream-token-bytes",
        "upstream_token_bytes",
        _within(parse_size, 1, UPSTREAM_LIMITS["token_bytes"], unit=" bytes"),
        64,
        "bytes per token",
        "--token-bytes",
        "upstream",
    ),
    _Flag(
        "--upstream-rate",
        "upstream_rate",
        _within(_rate, 0, UPSTREAM_LIMITS["rate"], unit=" tokens/s"),
        50.0,
        "tokens per second per stream (0 = as fast as read)",
        "--rate",
        "upstream",
    ),
    _Flag(
        "--upstream-header-delay",
        "upstream_header_delay",
        _within(parse_duration, 0, UPSTREAM_LIMITS["delay"], unit=" s"),
        0.0,
        "upstream delay before response headers",
        "--header-delay",
        "upstream",
    ),
    _Flag(
        "--upstream-first-token-delay",
        "upstream_first_token_delay",
        _within(parse_duration, 0, UPSTREAM_LIMITS["delay"], unit=" s"),
        0.0,
        "upstream delay between headers and first token",
        "--first-token-delay",
        "upstream",
    ),
    _Flag(
        "--server-sndbuf",
        "server_sndbuf",
        _within(parse_size, 0, MAX_BUFFER_BYTES, unit=" bytes"),
        4096,
        "SO_SNDBUF of the bundled servers' accepted sockets (0 = kernel autotuning)",
        "--sndbuf",
        "all",
    ),
    _Flag(
        "--server-write-high-water",
        "server_write_high_water",
        _within(parse_size, 0, MAX_BUFFER_BYTES, unit=" bytes"),
        4096,
        "write buffer high-water mark of the bundled servers (0 = asyncio's 64 KiB)",
        "--write-high-water",
        "all",
    ),
    _Flag(
        "--relay-read-bufsize",
        "relay_read_bufsize",
        _within(parse_size, 1, MAX_BUFFER_BYTES, unit=" bytes"),
        4096,
        "relays' aiohttp client read buffer toward the upstream",
        "--read-bufsize",
        "relay",
    ),
    _Flag(
        "--relay-upstream-rcvbuf",
        "relay_upstream_rcvbuf",
        _within(parse_size, 0, MAX_BUFFER_BYTES, unit=" bytes"),
        4096,
        "SO_RCVBUF of the relays' upstream sockets (0 = kernel autotuning)",
        "--upstream-rcvbuf",
        "relay",
    ),
    _Flag(
        "--relay-upstream-mss",
        "relay_upstream_mss",
        _within(parse_size, *MSS_RANGE, zero=True, unit=" bytes"),
        1448,
        "TCP_MAXSEG of the relays' upstream sockets (0 = loopback's own, about 64 KiB)",
        "--upstream-mss",
        "relay",
    ),
    _Flag(
        "--relay-high-water",
        "relay_high_water",
        _within(parse_size, 0, MAX_BUFFER_BYTES, unit=" bytes"),
        65536,
        "high-water mark of the bounded relay's buffer",
        "--high-water",
        "relay",
    ),
)


def add_stack_arguments(parser: Any, *, web_ui: bool = False) -> None:
    """Add the stack's flags to an argparse (or Locust's configargparse) parser or group."""
    # In Locust's web UI only the upstream's stream settings (sent with every request) can change between tests;
    # the rest reach the targets' command lines at launch.
    extra: dict[str, Any] = {"include_in_web_ui": False} if web_ui else {}
    for flag in _FLAGS:
        parser.add_argument(
            flag.flag,
            dest=flag.dest,
            type=argparse_type(flag.parse, flag.flag),
            default=flag.default,
            help=f"{flag.help} (default: {flag.default})",
            **({"include_in_web_ui": flag.to == "upstream"} if web_ui else {}),
        )
    parser.add_argument(
        "--profile-nframe",
        dest="profile_nframe",
        type=argparse_type(lambda text, what: _count(text, what=what), "--profile-nframe"),
        default=0,
        metavar="N",
        help="run the bundled relays under the tracemalloc probe keeping N frames per allocation "
        "(0 = off; at 1 the relays run 2.5-4x slower) (default: %(default)s)",
        **extra,
    )
    parser.add_argument(
        "--ready-timeout",
        dest="ready_timeout",
        type=argparse_type(parse_duration, "--ready-timeout"),
        default=15.0,
        help="seconds to wait for each launched target to answer (default: 15)",
        **extra,
    )


@dataclass(frozen=True, slots=True)
class StackOptions:
    """What to launch, and with which target flags."""

    relays: tuple[str, ...] = BUNDLED_RELAYS
    upstream_argv: tuple[str, ...] = ()
    relay_argv: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    ready_timeout_s: float = 15.0
    profile_nframe: int = 0
    """Frames per allocation traceback of the relays' tracemalloc probe; 0 = the relays run without it."""
    snapshot_dir: Path | None = None
    """The one folder the relays' probes may write snapshots into (the run folders' root); None: the logs' parent."""
    upstream_per_target: bool = False
    """One upstream per relay (``upstream@<relay>``, what a Locust run does) instead of one named ``upstream``
    shared by every relay (``harness serve``, benchmarks, tests that read one upstream's books)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, relays: Sequence[str]) -> StackOptions:
        """Options from the flags ``add_stack_arguments`` added."""
        upstream: list[str] = []
        relay: list[str] = []
        for flag in _FLAGS:
            value = str(getattr(args, flag.dest, flag.default))
            if flag.to in ("upstream", "all"):
                upstream += [flag.child_flag, value]
            if flag.to in ("relay", "all"):
                relay += [flag.child_flag, value]
        if getattr(args, "relay_read_bufsize", 1) < 1:
            raise UsageError(f"--relay-read-bufsize must be at least 1 byte, but got {args.relay_read_bufsize}")
        return cls(
            relays=tuple(relays),
            upstream_argv=tuple(upstream),
            relay_argv=tuple(relay),
            ready_timeout_s=getattr(args, "ready_timeout", 15.0),
            profile_nframe=getattr(args, "profile_nframe", 0),
        )


def _target_argv(module: str, host: str, *flags: str, port: int = 0) -> list[str]:
    return [sys.executable, "-m", f"targets.{module}", "--host", host, "--port", str(port), *flags]


def _upstream(name: str, options: StackOptions, log_dir: Path, port: int = 0) -> ChildProcess:
    """Start one fake upstream (not waiting for it): every upstream's command line and environment are made here."""
    argv = _target_argv("upstream", options.host, *options.upstream_argv, port=port)
    # The token guards the upstream's control route, through which each phase sets its defaults.
    return ChildProcess(LaunchSpec(name, argv, env={CONTROL_TOKEN_ENV: control_token()}), log_dir / f"{name}.log")


def start_upstreams(
    owners: Sequence[str], options: StackOptions, log_dir: Path, ports: Mapping[str, int] | None = None
) -> dict[str, ChildProcess]:
    """One fake upstream per target in ``owners`` (on a free port, or ``ports[owner]``), each ready; target name ->
    its upstream. On any failure every upstream already started is stopped before the error propagates."""
    started: dict[str, ChildProcess] = {}
    try:
        for owner in owners:
            started[owner] = _upstream(upstream_name(owner), options, log_dir, (ports or {}).get(owner, 0))
        for child in started.values():
            child.wait_ready(options.ready_timeout_s)
    except BaseException:
        stop_all(list(started.values()))
        raise
    return started


def start_bundled_stack(options: StackOptions, log_dir: Path) -> list[ChildProcess]:
    """Launch the upstreams, then each relay pointed at its own; return them once all answer (upstreams first).

    Each relay gets its own upstream with ``options.upstream_per_target``; else one named ``upstream`` serves them
    all. On any failure every process already started is stopped before the error propagates.
    """
    children: list[ChildProcess] = []
    try:
        if not options.upstream_per_target:
            shared = _upstream("upstream", options, log_dir)
            children.append(shared)
            shared_url = shared.wait_ready(options.ready_timeout_s)
            upstream_urls = dict.fromkeys(options.relays, shared_url)
        else:
            upstreams = start_upstreams(options.relays, options, log_dir)
            children += upstreams.values()
            upstream_urls = {owner: str(child.url) for owner, child in upstreams.items()}
        relays = []
        for name in options.relays:
            argv = _target_argv(name, options.host, "--upstream", upstream_urls[name], *options.relay_argv)
            spec = LaunchSpec(name, argv)
            if options.profile_nframe:
                # The relay still prints its own "listening on" line, so readiness works as without the probe.
                snapshots = options.snapshot_dir or log_dir.parent  # (a run folder holds logs/ and tracemalloc/)
                probe = ProbeLaunch.new(log_dir / f"{name}.probe-port", options.profile_nframe, snapshots)
                spec = LaunchSpec(name, probe.argv(argv[1:]), env=probe.env())
            relays.append(ChildProcess(spec, log_dir / f"{name}.log"))
        children += relays
        for child in relays:
            child.wait_ready(options.ready_timeout_s)
    except BaseException:
        stop_all(children)
        raise
    return children
