"""The upstream connection counter on real loopback sockets: attribution to processes by each method, permission."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.capture.connections import CONNECTION_COLUMNS, ConnectionCounter
from harness.capture.tcp_sockets import METHODS
from tests.support import Loopback


@pytest.mark.parametrize("method", METHODS)
def test_counter_attributes_connections_to_the_process_that_holds_them(method: str, loopback: Loopback) -> None:
    loopback.connect(4)
    counter = ConnectionCounter([("me", os.getpid(), loopback.port4), ("six", os.getpid(), loopback.port6)], method)
    try:
        assert counter.method == method
        counts = {count.target: count for count in counter.count()}
        assert counts["me"].by_state is not None
        assert counts["me"].by_state["established"] == 4
        assert counts["six"].by_state is not None
        assert sum(counts["six"].by_state.values()) == 0
        loopback.clients.pop().close()
        loopback.connect(3, six=True)
        counts = {count.target: count for count in counter.count()}
        assert counts["me"].by_state is not None
        assert counts["me"].by_state["established"] == 3
        assert counts["six"].by_state is not None
        assert counts["six"].by_state["established"] == 3
        row = counts["me"].row(1.5, counter.method)
        assert set(row) == set(CONNECTION_COLUMNS)
        assert row["total"] == 3
        assert row["method"] == method
        assert counter.take_warnings() == []
    finally:
        counter.close()


_HOLDER = (
    "import socket, sys, time; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
    "print('up', flush=True); time.sleep(30)"
)


def test_each_process_is_counted_its_own_connections_and_a_parent_its_childrens(loopback: Loopback) -> None:
    holders = [
        subprocess.Popen([sys.executable, "-c", _HOLDER, str(loopback.port4)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for holder in holders:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "up"
        loopback.connect(1)
        watched = [("a", holders[0].pid, loopback.port4), ("b", holders[1].pid, loopback.port4)]
        counter = ConnectionCounter([*watched, ("me", os.getpid(), loopback.port4)])
        counts = {count.target: count.by_state for count in counter.count()}
        counter.close()
        assert {name: state and state["established"] for name, state in counts.items()} == {"a": 1, "b": 1, "me": 3}
    finally:
        for holder in holders:
            holder.kill()
            holder.wait(timeout=10)
            if holder.stdout is not None:
                holder.stdout.close()


_UNPRIVILEGED = textwrap.dedent(
    """
    import json, os, sys
    from harness.capture.connections import ConnectionCounter
    os.setgid(65534)
    os.setuid(65534)  # now 'nobody': the root-owned target's /proc/PID/fd is closed to us
    counter = ConnectionCounter([("root-target", int(sys.argv[1]), int(sys.argv[2]))], "netlink")
    counts = counter.count()
    print(json.dumps({"by_state": counts[0].by_state and dict(counts[0].by_state),
                      "total": counts[0].row(0.0, counter.method).get("total"),
                      "warnings": counter.take_warnings()}))
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_a_count_that_cannot_be_read_is_blank_with_a_warning_not_zero(loopback: Loopback) -> None:
    loopback.connect(2)
    completed = subprocess.run(
        [sys.executable, "-c", _UNPRIVILEGED, str(os.getpid()), str(loopback.port4)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["by_state"] is None
    assert result["total"] is None
    assert len(result["warnings"]) == 1
    assert f"cannot read /proc/{os.getpid()}/fd" in result["warnings"][0]
    assert "root-target" in result["warnings"][0]
