"""The upstream connection counter on real loopback sockets: the three listing methods, attribution, permission."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.capture.connections import (
    CONNECTION_COLUMNS,
    METHODS,
    ConnectionCounter,
    list_netlink,
    list_psutil,
    list_ss,
    open_lister,
    socket_inodes,
)

LISTERS = {"netlink": list_netlink, "ss": list_ss, "psutil": list_psutil}


class Loopback:
    """Listeners on 127.0.0.1 and ::1 with some connections from this process to each."""

    def __init__(self) -> None:
        self.listener4 = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener6 = socket.create_server(("::1", 0), family=socket.AF_INET6, backlog=64)
        self.port4 = self.listener4.getsockname()[1]
        self.port6 = self.listener6.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.accepted: list[socket.socket] = []

    def connect(self, count: int, *, six: bool = False) -> list[socket.socket]:
        made = []
        for _ in range(count):
            address = ("::1", self.port6) if six else ("127.0.0.1", self.port4)
            client = socket.create_connection(address, timeout=5)
            self.accepted.append((self.listener6 if six else self.listener4).accept()[0])
            made.append(client)
        self.clients += made
        return made

    def close(self) -> None:
        for sock in [*self.clients, *self.accepted, self.listener4, self.listener6]:
            sock.close()


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    made = Loopback()
    yield made
    made.close()


@pytest.mark.parametrize("method", METHODS)
def test_each_method_lists_the_connections_to_a_port_with_their_state(method: str, loopback: Loopback) -> None:
    clients = loopback.connect(3) + loopback.connect(2, six=True)
    clients[0].close()
    loopback.clients.remove(clients[0])
    # the server side of the closed one is now CLOSE_WAIT on the server's socket (dport = the client's port),
    # the client's own socket FIN_WAIT2 without an owner; only the 2 open IPv4 ones count as established
    found = LISTERS[method]([loopback.port4, loopback.port6])
    established = [s for s in found if s.state == "established"]
    assert sorted(s.dport for s in established) == sorted([loopback.port4] * 2 + [loopback.port6] * 2)
    mine = socket_inodes(os.getpid())
    if method == "psutil":
        assert {-s.inode for s in established} == {os.getpid()}
    else:
        assert {s.inode for s in established} <= mine


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


def test_open_lister_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="one of netlink, ss, psutil, but got 'carrier-pigeon'"):
        open_lister("carrier-pigeon")


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
