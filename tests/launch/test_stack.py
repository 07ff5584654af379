"""The bundled stack: flags validated before launch, children stopped on any failure."""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

import psutil
import pytest

from harness.errors import TargetStartError, UsageError
from harness.launch.launched import free_port
from harness.launch.process import stop_all
from harness.launch.stack import (
    StackOptions,
    add_stack_arguments,
    parse_target_names,
    start_bundled_stack,
    start_upstreams,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    return parser.parse_args(argv)


def test_target_names() -> None:
    assert parse_target_names("lazy, eager") == ("lazy", "eager")
    with pytest.raises(UsageError, match=r"--targets takes bundled target names .* but got 'lazy,slow'"):
        parse_target_names("lazy,slow")
    with pytest.raises(UsageError, match="names a target twice"):
        parse_target_names("lazy,lazy")
    with pytest.raises(UsageError):
        parse_target_names(" , ")


def test_flags_become_the_targets_command_lines() -> None:
    options = StackOptions.from_args(parse("--upstream-rate", "200", "--upstream-token-bytes", "1KiB"), ["lazy"])
    upstream = dict(zip(options.upstream_argv[::2], options.upstream_argv[1::2], strict=True))
    relay = dict(zip(options.relay_argv[::2], options.relay_argv[1::2], strict=True))
    assert upstream["--rate"] == "200.0"
    assert upstream["--token-bytes"] == "1024"
    assert upstream["--sndbuf"] == relay["--sndbuf"] == "4096"
    assert relay["--high-water"] == "65536"
    assert "--rate" not in relay


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--upstream-rate", "fast"),
        ("--upstream-tokens", "-1"),
        ("--relay-high-water", "lots"),
        ("--ready-timeout", "x"),
    ],
)
def test_bad_flag_values_are_rejected_by_argparse(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse(flag, value)
    assert caught.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert flag in last
    assert repr(value) in last


def test_a_relay_that_cannot_start_stops_the_rest(tmp_path: Path) -> None:
    # The relays reject --read-bufsize 0; the upstream was already running and must be stopped.
    options = StackOptions(relays=("lazy",), relay_argv=("--read-bufsize", "0"), ready_timeout_s=15)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(TargetStartError, match=r"'lazy' exited with code 2 .*--read-bufsize"):
        start_bundled_stack(options, tmp_path)
    after = {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}
    assert after <= before
    assert (tmp_path / "upstream.log").exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--upstream-tokens", "-1"),
        ("--upstream-tokens", "2000000"),
        ("--upstream-token-bytes", "0"),
        ("--upstream-token-bytes", "70000"),
        ("--upstream-rate", "2e6"),
        ("--upstream-rate", "nan"),
        ("--upstream-header-delay", "11m"),
        ("--upstream-first-token-delay", "1e400"),
        ("--server-sndbuf", "1e400"),
        ("--server-sndbuf", "2GiB"),
        ("--relay-read-bufsize", "0"),
        ("--relay-upstream-mss", "40"),
        ("--relay-upstream-mss", "40000"),
        ("--ready-timeout", "inf"),
    ],
)
def test_out_of_range_stack_values_name_flag_value_and_range(flag: str, value: str) -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_stack_arguments(parser)
    with pytest.raises(argparse.ArgumentError) as caught:
        parser.parse_args([flag, value])
    message = str(caught.value)
    assert flag in message
    assert repr(value) in message
    assert "\n" not in message


def test_in_range_stack_values_pass() -> None:
    args = parse("--upstream-tokens", "1000000", "--relay-upstream-mss", "0", "--upstream-first-token-delay", "10m")
    assert (args.upstream_tokens, args.relay_upstream_mss, args.upstream_first_token_delay) == (1_000_000, 0, 600.0)


def test_stack_limits_are_the_upstreams_own() -> None:
    from harness.launch.stack import UPSTREAM_LIMITS
    from targets.upstream.settings import LIMITS

    assert UPSTREAM_LIMITS == LIMITS


def test_each_relay_gets_its_own_upstream_and_a_fixed_port_is_kept(tmp_path: Path) -> None:
    options = StackOptions(relays=("lazy", "eager"), ready_timeout_s=20, upstream_per_target=True)
    children = start_bundled_stack(options, tmp_path)
    port = free_port()
    try:
        children += start_upstreams(["mine"], options, tmp_path, {"mine": port}).values()
        names = [child.name for child in children]
        assert names == ["upstream@lazy", "upstream@eager", "lazy", "eager", "upstream@mine"]
        assert children[-1].url == f"http://127.0.0.1:{port}"
        urls = {str(child.url) for child in children}
        assert len(urls) == len(children)  # five processes, five ports
        for child in children:
            with urllib.request.urlopen(f"{child.url}/__harness/stats", timeout=5) as response:
                assert json.load(response)["time"] > 0
        lazy_argv = children[2].spec.argv
        assert lazy_argv[lazy_argv.index("--upstream") + 1] == children[0].url  # lazy calls upstream@lazy
    finally:
        stop_all(children, grace_s=3)
