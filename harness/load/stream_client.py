"""One HTTP/1.1 streaming request over one raw socket, spoken through h11.

The socket's receive buffer is set before connecting (so the window the server sees is small from the first
byte), the body is read in pieces of a size the caller chooses (so a slow reader reads slowly), and the
connection can end by a reset (SO_LINGER 0: RST, no FIN) or a plain close. Blocking calls with deadlines; under
gevent's monkey patching the same code is cooperative, which is how the Locust user runs it.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from harness.errors import UsageError

__all__ = ["StreamBroken", "StreamConnection", "StreamHead", "split_url"]

_CHUNK_END = (b"", b"\r", b"\r\n")


class StreamBroken(Exception):
    """The stream ended before it was complete: the peer reset or closed it, or sent bad HTTP."""


@dataclass(frozen=True, slots=True)
class StreamHead:
    status: int
    headers: dict[str, str]
    """Lower-cased names."""


def split_url(url: str) -> tuple[str, int, str]:
    """``http://127.0.0.1:8000/base`` -> ("127.0.0.1", 8000, "/base"); only plain http is supported."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"target URL must look like http://HOST:PORT, but got {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise UsageError(f"target URL has a bad port: {url!r}") from None
    return parts.hostname, port, parts.path.rstrip("/")


class StreamConnection:
    """A single streaming request/response on its own socket."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        rcvbuf_bytes: int = 0,
        connect_timeout_s: float = 10.0,
        mss_bytes: int = 0,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if mss_bytes:
            # Loopback's MSS is about 64 KiB: with the small send buffers the bundled servers use, the receiver
            # never gets two full-sized segments, so its ACKs wait for the delayed-ACK timer and a fast reader
            # stalls. An Ethernet-sized MSS (1448) makes loopback ACK like a real network.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss_bytes)
        if rcvbuf_bytes:
            # Before connect: the window scale is agreed in the handshake.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
        self.sock.settimeout(connect_timeout_s)
        try:
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._host_header = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        self._h11 = h11.Connection(h11.CLIENT)
        self.bytes_received = 0
        """Body bytes handed to the caller so far."""
        self.chunks_received = 0
        self._held = b""
        self._held_chunk_end = False
        """Chunks of a chunked body completed so far (one chunk per write on most servers)."""
        self.body_complete = False
        """The body ended as its framing says (the last chunk, or Content-Length bytes)."""
        self.closed = False
        self._needs_data = False
        self._sock_timeout: float | None = connect_timeout_s

    def send_request(self, method: str, target: str, headers: Mapping[str, str], body: bytes = b"") -> None:
        """Send the request line, headers and body."""
        all_headers = [("Host", self._host_header), ("Connection", "close")]
        all_headers += [(name, value) for name, value in headers.items()]
        if body:
            all_headers.append(("Content-Length", str(len(body))))
        data = self._h11.send(h11.Request(method=method, target=target, headers=all_headers))
        if body:
            data += self._h11.send(h11.Data(data=body))
        data += self._h11.send(h11.EndOfMessage())
        self.sock.sendall(data)

    def _next_event(self, deadline: float | None, max_bytes: int) -> object:
        while True:
            if self._needs_data:
                self._needs_data = False  # h11 would answer NEED_DATA: skip asking (it costs ~8 us a read)
            else:
                try:
                    event = self._h11.next_event()
                except h11.RemoteProtocolError as error:
                    raise StreamBroken(f"bad HTTP from server: {error}") from error
                if event is not h11.NEED_DATA:
                    return event
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if timeout == 0.0:
                raise TimeoutError("no data before the deadline")
            if timeout is None or abs(timeout - (self._sock_timeout or 0.0)) > 0.001:  # settimeout costs too
                self.sock.settimeout(timeout)
                self._sock_timeout = timeout
            try:
                data = self.sock.recv(max_bytes)
            except (ConnectionError, OSError) as error:
                if isinstance(error, TimeoutError | socket.timeout):
                    if deadline is not None and time.monotonic() < deadline:
                        self._needs_data = True  # the socket's timeout was a little shorter: wait the rest
                        continue
                    raise TimeoutError("no data before the deadline") from None
                raise StreamBroken(f"connection broken: {error}") from error
            try:
                self._h11.receive_data(data)  # b"" marks the peer's close
            except h11.RemoteProtocolError as error:
                raise StreamBroken(f"bad HTTP from server: {error}") from error

    def read_head(self, timeout_s: float | None = 30.0) -> StreamHead:
        """Wait for the status line and headers."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            event = self._next_event(deadline, 4096)
            if isinstance(event, h11.Response):
                return StreamHead(
                    status=event.status_code,
                    headers={name.decode().lower(): value.decode("latin-1") for name, value in event.headers},
                )
            if isinstance(event, h11.InformationalResponse):
                continue
            raise StreamBroken(f"connection ended before the response headers ({type(event).__name__})")

    def read(self, max_bytes: int = 65536, timeout_s: float | None = 30.0) -> bytes | None:
        """Up to ``max_bytes`` of body (at most one recv from the socket); None once the body ended cleanly.

        Raises StreamBroken if the connection ends before the body is complete (a truncated chunked body).
        """
        if self._held:
            # What h11 handed over beyond the last read's max_bytes (it returns whole Data events): a slow reader
            # gets no more than it asked for.
            piece, self._held = self._held[:max_bytes], self._held[max_bytes:]
            self.bytes_received += len(piece)
            if not self._held and self._held_chunk_end:
                self.chunks_received += 1
            return piece
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            event = self._next_event(deadline, max_bytes)
            if isinstance(event, h11.Data):
                data = bytes(event.data)
                if event.chunk_end:
                    # The chunk's trailing CRLF and the next chunk's size line come next: with no more than that
                    # CRLF buffered, h11 can only ask for more data.
                    self._needs_data = self._h11.trailing_data[0] in _CHUNK_END
                if len(data) > max_bytes:
                    data, self._held, self._held_chunk_end = data[:max_bytes], data[max_bytes:], event.chunk_end
                elif event.chunk_end:
                    self.chunks_received += 1
                self.bytes_received += len(data)
                return data
            if isinstance(event, h11.EndOfMessage):
                self.body_complete = True
                return None
            if isinstance(event, h11.ConnectionClosed):
                raise StreamBroken("connection closed before the body was complete")
            raise StreamBroken(f"unexpected HTTP event {type(event).__name__}")

    def close(self, *, reset: bool = False) -> None:
        """Close the socket; ``reset`` sends RST (SO_LINGER 0) instead of a FIN."""
        if self.closed:
            return
        self.closed = True
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
