"""What every bundled server shares, on real servers over loopback: 400 for bodies they cannot use (deeply nested
JSON, bad UTF-8), and bounded times for a request's headers and body (slow clients are cut off)."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from harness.launch.process import ChildProcess, LaunchSpec, stop_all

TIMEOUTS = ("--header-timeout", "1", "--body-timeout", "1")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An upstream and a lazy relay in front of it, each with 1 s header and body timeouts, shared by the module's
    tests (each opens connections of its own)."""
    tmp_path = tmp_path_factory.mktemp("servers")
    children: list[ChildProcess] = []
    try:
        upstream = ChildProcess(
            LaunchSpec("upstream", [sys.executable, "-m", "targets.upstream", "--port", "0", *TIMEOUTS]),
            tmp_path / "upstream.log",
        )
        children.append(upstream)
        upstream_url = upstream.wait_ready(20)
        relay = ChildProcess(
            LaunchSpec(
                "lazy", [sys.executable, "-m", "targets.lazy", "--port", "0", "--upstream", upstream_url, *TIMEOUTS]
            ),
            tmp_path / "lazy.log",
        )
        children.append(relay)
        yield {"upstream": upstream_url, "lazy": relay.wait_ready(20)}
    finally:
        stop_all(children, grace_s=3)


def _post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.parametrize("name", ["upstream", "lazy"])
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"messages": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}", "nested too deeply"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1]", "JSON object"),
    ],
)
def test_bodies_the_servers_cannot_use_get_400(servers: dict[str, str], name: str, body: bytes, reason: str) -> None:
    status, answer = _post(servers[name], body)
    assert status == 400, answer
    assert reason in json.dumps(answer)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.settimeout(5)
    return sock


@pytest.mark.parametrize("name", ["upstream", "lazy"])
def test_headers_that_never_end_are_cut_off(servers: dict[str, str], name: str) -> None:
    with _connect(servers[name]) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # no blank line: headers never end
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server
        assert time.monotonic() - started < 4


@pytest.mark.parametrize("name", ["upstream", "lazy"])
def test_a_body_that_never_arrives_gets_408(servers: dict[str, str], name: str) -> None:
    with _connect(servers[name]) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < 4
