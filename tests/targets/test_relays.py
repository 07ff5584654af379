"""The three relays against the real upstream, over real sockets: back-pressure, cancellation, failures."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.launch.process import ChildProcess, LaunchSpec
from harness.load.stream_client import StreamBroken, StreamConnection, split_url
from targets.upstream import token_text
from tests.support import Stack, stack_running, wait_until

RELAYS = ("eager", "lazy", "bounded")


def open_stream(stack: Stack, name: str, stream_id: str, query: str, rcvbuf: int = 4096) -> StreamConnection:
    host, port, _ = split_url(stack.url[name])
    connection = StreamConnection(host, port, rcvbuf_bytes=rcvbuf)
    connection.send_request("GET", f"/v1/stream?{query}", {"X-Request-ID": stream_id})
    return connection


def drain(connection: StreamConnection) -> bytes:
    """Read the body to its end."""
    body = b""
    while (chunk := connection.read(timeout_s=10)) is not None:
        body += chunk
    return body


def upstream_records(stack: Stack) -> dict[str, dict[str, Any]]:
    return {record["id"]: record for record in stack.get_json("upstream", "/__harness/streams")}


def open_upstream_ids(stack: Stack, prefix: str) -> set[str]:
    return {sid for sid, record in upstream_records(stack).items() if sid.startswith(prefix) and record["end"] is None}


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    with stack_running(tmp_path) as stack:
        yield stack


def test_fast_reader_gets_every_sse_token_in_order_through_each_relay(own_stack: Stack) -> None:
    for name in ("upstream", *RELAYS):
        host, port, _ = split_url(own_stack.url[name])
        connection = StreamConnection(host, port)
        messages = [{"role": "user", "content": "hi"}]
        body = json.dumps({"stream": True, "messages": messages, "user": f"fast-{name}"}).encode()
        connection.send_request("POST", "/v1/chat/completions?tokens=300&rate=0&token_bytes=100", {}, body)
        head = connection.read_head(timeout_s=10)
        assert head.status == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        data = drain(connection)
        connection.close()
        events = data.decode().split("\n\n")[:-1]
        assert events[-1] == "data: [DONE]"
        chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
        contents = [chunk["choices"][0]["delta"]["content"] for chunk in chunks[1:-1]]
        assert contents == [token_text(i, 100) for i in range(300)], name
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    records = upstream_records(own_stack)
    assert all(records[f"fast-{name}"]["end_reason"] == "completed" for name in ("upstream", *RELAYS))


def _read_one_token_each(stack: Stack, query: str, per_relay: int) -> list[StreamConnection]:
    connections = []
    for name in RELAYS:
        for index in range(per_relay):
            connection = open_stream(stack, name, f"{name}-{index}", query)
            assert connection.read_head(timeout_s=10).status == 200
            assert connection.read(64, timeout_s=10)
            connections.append(connection)
    return connections


def test_reset_after_one_token_lazy_and_bounded_close_upstream_eager_keeps_producing(own_stack: Stack) -> None:
    connections = _read_one_token_each(own_stack, "tokens=2000&rate=20&token_bytes=64", per_relay=20)
    assert wait_until(lambda: all(len(open_upstream_ids(own_stack, n)) == 20 for n in RELAYS), 5)
    for connection in connections:
        connection.close(reset=True)
    left_at = time.monotonic()
    assert wait_until(
        lambda: not open_upstream_ids(own_stack, "lazy") and not open_upstream_ids(own_stack, "bounded"), 0.5
    )
    assert time.monotonic() - left_at <= 0.5
    eager_open = open_upstream_ids(own_stack, "eager")
    assert len(eager_open) == 20
    before = sum(r["tokens_sent"] for sid, r in upstream_records(own_stack).items() if sid.startswith("eager"))
    time.sleep(0.5)
    after = sum(r["tokens_sent"] for sid, r in upstream_records(own_stack).items() if sid.startswith("eager"))
    assert after - before >= 20 * 5  # 20 streams at 20 tokens/s for 0.5 s: about 200 tokens for nobody
    assert open_upstream_ids(own_stack, "eager") == eager_open
    records = upstream_records(own_stack)
    assert {records[f"lazy-{i}"]["end_reason"] for i in range(20)} == {"peer_closed"}
    assert own_stack.stats("lazy")["open_upstream_streams"] == 0
    assert own_stack.stats("bounded")["open_upstream_streams"] == 0
    assert own_stack.stats("eager")["open_upstream_streams"] == 20
    assert own_stack.stats("eager")["active_client_streams"] == 0


@pytest.mark.parametrize("silence", ["first_token_delay", "header_delay"])
def test_client_leaving_during_a_silent_upstream(own_stack: Stack, silence: str) -> None:
    connections = [
        open_stream(own_stack, name, f"{name}-{index}", f"{silence}=30&tokens=10")
        for name in RELAYS
        for index in range(20)
    ]
    assert wait_until(lambda: all(len(open_upstream_ids(own_stack, n)) == 20 for n in RELAYS), 5)
    for connection in connections:
        connection.close(reset=True)
    assert wait_until(
        lambda: not open_upstream_ids(own_stack, "lazy") and not open_upstream_ids(own_stack, "bounded"), 0.5
    )
    if silence == "first_token_delay":
        # The eager pump already had the upstream's headers and goes on waiting for its tokens.
        time.sleep(0.3)
        assert len(open_upstream_ids(own_stack, "eager")) == 20


class SlowReader(threading.Thread):
    """Reads ``bytes_per_s`` from a plain stream, one read per second, for ``duration_s``."""

    def __init__(self, connection: StreamConnection, bytes_per_s: int, duration_s: float) -> None:
        super().__init__(daemon=True)
        self.connection, self.bytes_per_s, self.duration_s = connection, bytes_per_s, duration_s
        self.read_bytes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.connection.read_head(timeout_s=10)
            deadline = time.monotonic() + self.duration_s
            while time.monotonic() < deadline:
                chunk = self.connection.read(self.bytes_per_s, timeout_s=10)
                if chunk is None:
                    return
                self.read_bytes += len(chunk)
                time.sleep(1.0)
        except BaseException as error:  # reported by the test
            self.error = error


@pytest.mark.slow
def test_slow_readers_eager_grows_lazy_and_bounded_stay_bounded(own_stack: Stack) -> None:
    token_bytes, high_water = 1024, 65536
    rss = {name: psutil.Process(own_stack.children[name].pid).memory_info().rss for name in RELAYS}
    readers = {
        name: [
            SlowReader(
                open_stream(own_stack, name, f"{name}-{index}", f"tokens=100000&rate=200&token_bytes={token_bytes}"),
                bytes_per_s=1024,
                duration_s=10,
            )
            for index in range(20)
        ]
        for name in RELAYS
    }
    for group in readers.values():
        for reader in group:
            reader.start()
    peak_bounded = 0
    deadline = time.monotonic() + 10.5
    while time.monotonic() < deadline:
        peak_bounded = max(peak_bounded, own_stack.stats("bounded")["buffered_bytes"])
        time.sleep(0.25)
    stats = {name: own_stack.stats(name) for name in RELAYS}
    growth = {name: psutil.Process(own_stack.children[name].pid).memory_info().rss - rss[name] for name in RELAYS}
    records = upstream_records(own_stack)
    for group in readers.values():
        for reader in group:
            reader.join(timeout=15)
            assert reader.error is None, reader.error
            reader.connection.close(reset=True)

    def backlog(name: str) -> list[int]:
        """Bytes the upstream produced for each stream beyond what its client read."""
        return [records[f"{name}-{i}"]["bytes_sent"] - reader.read_bytes for i, reader in enumerate(readers[name])]

    # eager: about 200 KiB/s per stream arrives and 1 KiB/s leaves, for 20 streams and 10 s
    assert stats["eager"]["buffered_bytes"] > 20 * 2**20, stats["eager"]
    assert growth["eager"] > 20 * 2**20, growth
    assert min(backlog("eager")) > 1 * 2**20
    # lazy: nothing buffered of its own; the upstream is held back to what sockets and read buffers hold
    assert stats["lazy"]["buffered_bytes"] == 0
    assert max(backlog("lazy")) < 128 * 1024, backlog("lazy")
    assert sum(backlog("lazy")) < 20 * 128 * 1024
    assert growth["lazy"] < 8 * 2**20, growth
    # bounded: at most its high-water mark (plus one chunk) per connection
    assert peak_bounded <= 20 * (high_water + 16384), peak_bounded
    assert max(backlog("bounded")) < high_water + 128 * 1024, backlog("bounded")


def test_relay_answers_502_naming_an_unreachable_upstream(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    for name in RELAYS:
        child = ChildProcess(
            LaunchSpec(
                name,
                [sys.executable, "-m", f"targets.{name}", "--port", "0", "--upstream", f"http://127.0.0.1:{dead_port}"],
            ),
            tmp_path / f"{name}.log",
        )
        try:
            url = child.wait_ready(15)
            host, port, _ = split_url(url)
            connection = StreamConnection(host, port)
            connection.send_request("GET", "/v1/stream", {})
            head = connection.read_head(timeout_s=10)
            body = drain(connection)
            connection.close()
            assert head.status == 502
            assert f"upstream http://127.0.0.1:{dead_port} failed" in json.loads(body)["error"]["message"]
        finally:
            child.stop(grace_s=3)


def test_relays_pass_the_upstreams_400_through(own_stack: Stack) -> None:
    for name in RELAYS:
        connection = open_stream(own_stack, name, f"bad-{name}", "tokens=-3")
        assert connection.read_head(timeout_s=10).status == 400
        body = drain(connection)
        connection.close()
        assert "tokens must be a whole number" in json.loads(body)["error"]["message"]


def test_upstream_dying_mid_stream_truncates_the_client_stream_and_logs_one_line(tmp_path: Path) -> None:
    with stack_running(tmp_path) as stack:
        connections = {name: open_stream(stack, name, f"{name}-dies", "tokens=1000&rate=20") for name in RELAYS}
        for connection in connections.values():
            assert connection.read_head(timeout_s=10).status == 200
            assert connection.read(64, timeout_s=10)
        stack.children["upstream"].popen.kill()
        for name, connection in connections.items():
            with pytest.raises(StreamBroken):
                drain(connection)
            connection.close()
            assert wait_until(
                lambda n=name: "upstream stream broke off" in (tmp_path / "logs" / f"{n}.log").read_text(), 5
            )
            log_lines = (tmp_path / "logs" / f"{name}.log").read_text().splitlines()
            assert len([line for line in log_lines if "broke off" in line]) == 1
            assert not any("Traceback" in line for line in log_lines), log_lines


@pytest.mark.parametrize("name", RELAYS)
def test_relay_without_upstream_flag_exits_2(name: str) -> None:
    result = subprocess.run([sys.executable, "-m", f"targets.{name}"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--upstream" in result.stderr.strip().splitlines()[-1]
