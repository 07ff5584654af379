"""The stream client (httptools) over real loopback sockets: URLs, heads, bodies, truncation, reset, socket options."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harness.errors import UsageError
from harness.load.stream_client import StreamBroken, StreamConnection, split_url


def test_split_url() -> None:
    assert split_url("http://127.0.0.1:8000/base/") == ("127.0.0.1", 8000, "/base")
    assert split_url("http://[::1]:9000") == ("::1", 9000, "")
    for bad in ("https://127.0.0.1:1", "127.0.0.1:80", "http://:80", "http://h:99999"):
        with pytest.raises(UsageError, match="URL"):
            split_url(bad)


@pytest.fixture
def server() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A listening socket; each test's handler thread answers one connection with the bytes it is given."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    replies: list[bytes] = []
    yield listener, replies
    listener.close()


def answer_once(listener: socket.socket, reply: bytes, *, then_reset: bool = False) -> threading.Thread:
    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            conn.recv(65536)
            conn.sendall(reply)
            if then_reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def connect(listener: socket.socket, **options: int) -> StreamConnection:
    host, port = listener.getsockname()
    return StreamConnection(host, port, connect_timeout_s=5, **options)


def test_chunked_body_in_pieces_then_end(server: tuple[socket.socket, list[bytes]]) -> None:
    listener, _ = server
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    thread = answer_once(listener, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-ID: s1\r\n\r\n" + body)
    connection = connect(listener)
    connection.send_request("GET", "/v1/stream", {"X-Request-ID": "s1"})
    head = connection.read_head(timeout_s=5)
    assert head.status == 200
    assert head.headers["x-request-id"] == "s1"
    pieces = []
    while (piece := connection.read(3, timeout_s=5)) is not None:
        pieces.append(piece)
    assert b"".join(pieces) == b"hello world"
    assert all(len(piece) <= 3 for piece in pieces)  # a slow reader reads no more than it asks for
    assert connection.bytes_received == 11
    assert connection.chunks_received == 2
    connection.close()
    thread.join(5)


def head_then_body(connection: StreamConnection) -> None:
    connection.read_head(timeout_s=5)
    drain(connection)


def drain(connection: StreamConnection) -> None:
    while connection.read(timeout_s=5) is not None:
        pass


def test_truncated_chunked_body_is_broken(server: tuple[socket.socket, list[bytes]]) -> None:
    listener, _ = server
    thread = answer_once(listener, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", then_reset=True)
    connection = connect(listener)
    connection.send_request("GET", "/", {})
    connection.read_head(timeout_s=5)
    with pytest.raises(StreamBroken):
        drain(connection)
    connection.close()
    thread.join(5)


def test_silence_past_the_deadline_is_a_timeout(server: tuple[socket.socket, list[bytes]]) -> None:
    listener, _ = server
    connection = connect(listener)
    connection.send_request("GET", "/", {})
    with pytest.raises(TimeoutError):
        connection.read_head(timeout_s=0.2)
    connection.close(reset=True)


def test_socket_options_are_set_before_connecting(server: tuple[socket.socket, list[bytes]]) -> None:
    listener, _ = server
    connection = connect(listener, rcvbuf_bytes=4096, mss_bytes=1448)
    assert connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) <= 2 * 4096 + 4096  # Linux doubles it
    assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) <= 1448
    accepted, _ = listener.accept()
    with accepted:
        connection.close(reset=True)
        accepted.settimeout(5)
        with pytest.raises(ConnectionResetError):  # SO_LINGER 0: the peer sees a reset, not a FIN
            accepted.recv(10)


def read_all(listener: socket.socket, reply: bytes, max_bytes: int = 65536) -> tuple[StreamConnection, bytes]:
    thread = answer_once(listener, reply)
    connection = connect(listener)
    connection.send_request("GET", "/", {})
    assert connection.read_head(timeout_s=5).status == 200
    pieces = []
    while (piece := connection.read(max_bytes, timeout_s=5)) is not None:
        pieces.append(piece)
    connection.close()
    thread.join(5)
    return connection, b"".join(pieces)


def test_informational_heads_are_skipped_and_lengths_end_bodies(server: tuple[socket.socket, list[bytes]]) -> None:
    listener, _ = server
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    connection, body = read_all(listener, reply)
    assert (body, connection.body_complete, connection.chunks_received) == (b"hello", True, 0)


def test_a_body_without_length_or_chunks_ends_at_the_close(server: tuple[socket.socket, list[bytes]]) -> None:
    listener, _ = server
    connection, body = read_all(listener, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", 4)
    assert (body, connection.body_complete, connection.bytes_received) == (b"until close", True, 11)


def test_chunks_are_counted_as_they_complete_however_reads_cut_them(server: tuple[socket.socket, list[bytes]]) -> None:
    listener, _ = server
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(word), word) for word in (b"one", b"two", b"three")) + b"0\r\n\r\n"
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

    def run() -> None:  # the head and a chunk cut before its CRLF, then the rest byte by byte
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(reply + chunks[:6])
            for byte in chunks[6:]:
                time.sleep(0.005)
                conn.sendall(bytes([byte]))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    connection = connect(listener)
    connection.send_request("GET", "/", {})
    connection.read_head(timeout_s=5)
    seen = []
    while (piece := connection.read(2, timeout_s=5)) is not None:
        seen.append((piece, connection.chunks_received))
    assert b"".join(piece for piece, _ in seen) == b"onetwothree"
    assert connection.chunks_received == 3
    assert [count for _, count in seen] == sorted(count for _, count in seen)
    thread.join(5)
    connection.close()


def test_bad_http_is_broken_and_header_breaks_are_refused(server: tuple[socket.socket, list[bytes]]) -> None:
    listener, _ = server
    thread = answer_once(listener, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    connection = connect(listener)
    with pytest.raises(UsageError, match="line break"):
        connection.send_request("GET", "/", {"X-Bad": "a\r\nInjected: 1"})
    connection.send_request("GET", "/", {})
    with pytest.raises(StreamBroken, match="bad HTTP"):  # in the head's read or the body's
        head_then_body(connection)
    connection.close()
    thread.join(5)
