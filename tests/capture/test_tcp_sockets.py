"""The three ways to list the machine's TCP sockets to a port, on real loopback sockets."""

from __future__ import annotations

import os

import pytest

from harness.capture.connections import socket_inodes
from harness.capture.tcp_sockets import METHODS, list_netlink, list_psutil, list_ss, open_lister
from tests.support import Loopback

LISTERS = {"netlink": list_netlink, "ss": list_ss, "psutil": list_psutil}


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


def test_open_lister_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="one of netlink, ss, psutil, but got 'carrier-pigeon'"):
        open_lister("carrier-pigeon")
