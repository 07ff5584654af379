"""Shared fixtures: the real bundled stack on loopback, started as child processes and always stopped."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.launch.process import ChildProcess, LaunchSpec, stop_all
from harness.launch.stack import StackOptions, start_bundled_stack


class Stack:
    """A running bundled stack: ``stack.url["lazy"]``, ``stack.stats("upstream")``."""

    def __init__(self, children: list[ChildProcess]) -> None:
        self.children = {child.name: child for child in children}
        self.url = {child.name: str(child.url) for child in children}

    def get_json(self, name: str, path: str) -> Any:
        with urllib.request.urlopen(self.url[name] + path, timeout=5) as response:
            return json.load(response)

    def stats(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json(name, "/__harness/stats")
        return result


def start_stack(tmp_path: Path, *upstream_argv: str, relay_argv: tuple[str, ...] = ()) -> Iterator[Stack]:
    """Start upstream + eager + lazy + bounded with the bundled defaults plus these flags; stop them after."""
    defaults = StackOptions.from_args(_default_args(), ("eager", "lazy", "bounded"))
    options = StackOptions(
        upstream_argv=defaults.upstream_argv + upstream_argv,
        relay_argv=defaults.relay_argv + relay_argv,
        ready_timeout_s=20,
    )
    children = start_bundled_stack(options, tmp_path / "logs")
    try:
        yield Stack(children)
    finally:
        stop_all(children, grace_s=3)


def _default_args() -> Any:
    import argparse

    from harness.launch.stack import add_stack_arguments

    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    return parser.parse_args([])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The bundled stack with its default flags, shared by a test module (tests must not assume it is idle)."""
    yield from start_stack(tmp_path_factory.mktemp("stack"))


stack_running = contextlib.contextmanager(start_stack)
"""``with stack_running(tmp_path, "--rate", "200") as stack:`` a stack of the test's own."""


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; return whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


@contextlib.contextmanager
def agent_running(
    stack: Stack, name: str, out: Path, *, port: int = 0, as_name: str = "server", interval: str = "100ms"
) -> Iterator[ChildProcess]:
    """A real ``python -m harness agent`` sampling the stack's ``name`` relay; ready (its /meta answers) within
    15 s, stopped after (SIGTERM, then SIGKILL)."""
    upstream_port = urllib.parse.urlsplit(stack.url["upstream"]).port
    argv = [sys.executable, "-m", "harness", "agent", "--pid", str(stack.children[name].pid), "--port", str(port)]
    argv += ["--upstream-port", str(upstream_port), "--interval", interval]
    argv += ["--name", as_name, "--stats-url", stack.url[name], "--out", str(out)]
    agent = ChildProcess(LaunchSpec(f"agent-{as_name}", argv, ready_path="/meta"), out / "agent.log")
    try:
        agent.wait_ready(15)
        yield agent
    finally:
        agent.stop(grace_s=5)
