"""The real-server pairs and how they are launched: shared by tests/targets_apps/test_real_servers.py and
benchmarks/real_servers.py. Each name says what the server is and whether it is the buggy or the correct variant."""

from __future__ import annotations

import shlex
import sys

__all__ = ["DISCONNECT_TARGETS", "SLOW_READER_TARGETS", "launch_flags"]

DISCONNECT_TARGETS = {
    "fixed-ok": "fixed_proxy:app",
    "fixed-bug": "fixed_proxy:ignores_disconnect_app",
    "silent-ok": "silent_proxy:notices_app",
    "silent-bug": "silent_proxy:waits_app",
    "gateway-ok": "gateway:app",
    "gateway-bug": "gateway:billing_app",
}
"""Judged in disconnects.py: cancellation."""
SLOW_READER_TARGETS = {
    "buffer-bug": "buffering_relay:unbounded_app",
    "buffer-ok": "buffering_relay:bounded_app",
    "fixed-ok": "fixed_proxy:app",
    "gateway-ok": "gateway:app",
}
"""Judged in slow_readers.py: back-pressure (and four targets for fairness)."""


def launch_flags(targets: dict[str, str]) -> list[str]:
    """``--launch NAME=COMMAND`` for each: uvicorn on the port the harness picks; nothing else is said."""
    python = shlex.quote(sys.executable)
    flags = []
    for name, app in targets.items():
        command = f"{python} -m uvicorn tests.targets_apps.{app} --host 127.0.0.1 --port {{port}} --no-access-log"
        flags += ["--launch", f"{name}={command}"]
    return flags
