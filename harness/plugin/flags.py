"""The plugin's flags on Locust's parser: their checks, their names, and the stack flags sent per request.

Each check raises :class:`~harness.errors.UsageError` with one line naming the flag, the value and what was
expected; Locust's parser turns that into ``locust: error: ...`` and exit 2 before anything is launched.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

from harness.errors import UsageError
from harness.gate.flags import add_locust_gate_arguments
from harness.launch.stack import BUNDLED_RELAYS, add_stack_arguments, parse_target_names
from harness.launch.targets_spec import add_target_arguments
from harness.load.apis import API_NAMES, DEFAULT_API, parse_api
from harness.load.pacing import Pace
from harness.load.streaming_user import MIN_RCVBUF_BYTES, format_targets, parse_targets
from harness.units import argparse_type, check_writable, parse_duration, parse_size, positive_float, writable_path

__all__ = [
    "PLUGIN_FLAGS",
    "add_arguments",
    "bundled_relays",
    "check_before_launch",
    "recorded_flags",
    "upstream_flag_settings",
]

MAX_SCENARIO_SCALE = 100.0
"""A scaled scenario must still end: 100 x the demo's 50 s is about 80 minutes."""

_OUTPUTS = {
    "run_dir": ("--run-dir", True),
    "gate_junit": ("--gate-junit", False),
    "html_file": ("--html", False),
    "json_file": ("--json-file", False),
    "logfile": ("--logfile", False),
}
"""Where this run writes (the plugin's and Locust's own): checked before anything is launched."""

PLUGIN_FLAGS = (
    "targets",
    "target_url",
    "read_pace",
    "client_rcvbuf",
    "stream_api",
    "run_dir",
    "scenario_scale",
    "sample_interval",
    "agent",
    "launch",
    "launch_ready",
    "launch_timeout",
    "profile_launched",
    "attach",
    "request",
    "request_body",
    "request_api",
)
"""The plugin's own flags (their values are recorded in meta.json)."""

_UPSTREAM_QUERY = (
    ("upstream_tokens", "tokens"),
    ("upstream_token_bytes", "token_bytes"),
    ("upstream_rate", "rate"),
    ("upstream_header_delay", "header_delay"),
    ("upstream_first_token_delay", "first_token_delay"),
)
"""Stack flags the fake upstreams' defaults are set to at each test and phase start (through their control route),
so values changed in the web UI apply to the next test run, and phases that declare nothing get them."""


def _targets_text(text: str, *, what: str) -> str:
    return ",".join(parse_target_names(text, what=what))


def _target_urls_text(text: str, *, what: str) -> str:
    return format_targets(parse_targets(text, what=what)) if text.strip() else ""


def _pace_text(text: str, *, what: str) -> str:
    return str(Pace.parse(text, what=what))


def _rcvbuf(text: str, *, what: str) -> int:
    value = parse_size(text, what=what)
    if 0 < value < MIN_RCVBUF_BYTES:
        raise UsageError(
            f"{what} must be 0 (kernel autotuning) or at least {MIN_RCVBUF_BYTES} bytes "
            f"(Linux raises anything smaller), but got {text!r}"
        )
    return value


def _agent_text(text: str, *, what: str) -> str:
    name, sep, url = text.partition("=")
    parts = urlsplit(url)
    if not sep or not name.strip() or parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"{what} must be NAME=http://HOST:PORT (a `harness agent`), but got {text!r}")
    return f"{name.strip()}={url.rstrip('/')}"


def _scale(text: str, *, what: str) -> float:
    value = positive_float(text, what=what)
    if value > MAX_SCENARIO_SCALE:
        raise UsageError(f"{what} must be a number > 0 and <= {MAX_SCENARIO_SCALE:g}, but got {text!r}")
    return value


def _folder(text: str, *, what: str) -> str:
    return writable_path(text, what=what, folder=True)


def _interval(text: str, *, what: str) -> float:
    value = parse_duration(text, what=what)
    if not value >= 0.01:
        raise UsageError(f"{what} must be at least 10ms, but got {text!r}")
    return value


def add_arguments(parser: Any) -> None:
    """The plugin's flags and the bundled stack's, on Locust's parser (they show in the web UI)."""
    launch_only = {"include_in_web_ui": False}
    parser.add_argument(
        "--targets",
        type=argparse_type(_targets_text, "--targets"),
        default=None,
        help=f"bundled relays to launch and load, comma-separated (default: {','.join(BUNDLED_RELAYS)}, "
        "unless --launch, --attach or --target-url name targets)",
        **launch_only,
    )
    parser.add_argument(
        "--target-url",
        type=argparse_type(_target_urls_text, "--target-url"),
        default="",
        metavar="NAME=URL[,NAME=URL...]",
        help="load these running servers (not sampled); see --attach to sample them",
        **launch_only,
    )
    parser.add_argument(
        "--read-pace",
        type=argparse_type(_pace_text, "--read-pace"),
        default="1KiB/s",
        help="pace of slow readers whose scenario names none: bytes/s (4KiB/s) or tokens/s (5tok/s) (default: 1KiB/s)",
    )
    parser.add_argument(
        "--client-rcvbuf",
        type=argparse_type(_rcvbuf, "--client-rcvbuf"),
        default=4096,
        help=f"SO_RCVBUF of each client socket, set before connecting; 0 = kernel autotuning, "
        f"else >= {MIN_RCVBUF_BYTES} (default: 4096)",
    )
    parser.add_argument(
        "--stream-api",
        type=argparse_type(parse_api, "--stream-api"),
        default=DEFAULT_API,
        help=f"the API the clients speak: {', '.join(API_NAMES)} (default: {DEFAULT_API})",
    )
    parser.add_argument(
        "--run-dir",
        type=argparse_type(_folder, "--run-dir"),
        default="reports",
        help="where run folders are created (default: reports)",
        **launch_only,
    )
    parser.add_argument(
        "--scenario-scale",
        type=argparse_type(_scale, "--scenario-scale"),
        default=1.0,
        help=f"multiply every phase duration of the scenario (0.2 = five times shorter; at most "
        f"{MAX_SCENARIO_SCALE:g}) (default: 1)",
    )
    parser.add_argument(
        "--sample-interval",
        type=argparse_type(_interval, "--sample-interval"),
        default=0.25,
        help="seconds between samples of the targets' processes and stats (default: 250ms)",
        **launch_only,
    )
    parser.add_argument(
        "--agent",
        type=argparse_type(_agent_text, "--agent"),
        action="append",
        default=[],
        metavar="NAME=URL",
        help="also read the server figures of target NAME from a `harness agent` at URL (repeatable)",
        **launch_only,
    )
    add_stack_arguments(parser, web_ui=True)
    add_locust_gate_arguments(parser)
    add_target_arguments(parser)
    # The demo profiles its relays (growth sites and holders in the report); a CI gate passes --profile-nframe 0.
    parser.set_defaults(profile_nframe=1)


def check_before_launch(options: Any) -> None:
    """What the parser cannot check alone: output paths (Locust's own too), the gate's configuration file.
    UsageError (one line, exit 2) before the run folder exists and before anything is launched."""
    check_writable(options, _OUTPUTS)
    csv_prefix = getattr(options, "csv_prefix", None)
    if csv_prefix:
        writable_path(f"{csv_prefix}_stats.csv", what="--csv")
    if getattr(options, "gate", False):
        from harness.gate.config import options_from_locust

        options_from_locust(options)  # reads --gate-config now, not after the whole run


def bundled_relays(options: Any) -> tuple[str, ...]:
    """The bundled relays named with --targets (none when it is not given)."""
    return parse_target_names(options.targets) if options.targets else ()


def _stack_dests() -> list[str]:
    parser = argparse.ArgumentParser(add_help=False)
    add_stack_arguments(parser)
    return [action.dest for action in parser._actions]


def recorded_flags(options: Any) -> dict[str, Any]:
    """The plugin's and the stack's flag values, as meta.json records them."""
    return {name: getattr(options, name, None) for name in (*PLUGIN_FLAGS, *_stack_dests())}


def upstream_flag_settings(options: Any) -> dict[str, int | float]:
    """The stack's upstream flags by the control route's names (``tokens``, ``rate``, ...)."""
    return {name: getattr(options, dest) for dest, name in _UPSTREAM_QUERY}
