"""Fixtures of the capture tests: real loopback sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


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
