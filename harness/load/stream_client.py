"""One HTTP/1.1 streaming request over one raw socket, the response parsed by httptools (llhttp, uvicorn's parser).

The socket's receive buffer is set before connecting (so the window the server sees is small from the first
byte), the body is read in pieces of a size the caller chooses (so a slow reader reads slowly: one read is at most
one recv), and the connection can end by a reset (SO_LINGER 0: RST, no FIN) or a plain close. Blocking calls with
deadlines; under gevent's monkey patching the same code is cooperative, which is how the Locust user runs it.

The parser is C: a read costs one recv and one ``feed_data``, whose body callback is ``list.append`` (no Python
frame); chunk ends are counted (a Python callback) only when the caller asks for them.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httptools

from harness.errors import UsageError
from harness.load.echo import PREFIX_BYTES

if TYPE_CHECKING:
    from harness.load.cooperative import ReadableWait

__all__ = ["StreamBroken", "StreamConnection", "StreamHead", "split_url"]

HEAD_READ_BYTES = 4096


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


class _Receiver:
    """httptools' protocol object: what the parser reports, kept for the connection to pick up after each feed."""

    def __init__(self, *, count_chunks: bool) -> None:
        self.pieces: list[bytes] = []
        """Body bytes in order, since the connection last took them."""
        self.chunk_marks: list[int] = []
        """With chunk counting: for each chunk completed (one that carried data), ``len(pieces)`` at its end."""
        self.on_body = self.pieces.append  # a C method: no Python frame per body piece
        if count_chunks:
            self.on_body = self._body_in_chunk
            self.on_chunk_complete = self._chunk_complete
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.complete = False
        self.until_close = False
        """The body has neither a length nor chunks: it ends when the server closes the connection."""
        self._in_chunk = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # informational (100 Continue, 103 Early Hints): the real head follows
            self.headers = {}
            return
        self.status = status
        self.head_done = True
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.until_close = not chunked and "content-length" not in self.headers and status not in (204, 304)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True

    def _body_in_chunk(self, data: bytes) -> None:
        self.pieces.append(data)
        self._in_chunk = True

    def _chunk_complete(self) -> None:
        if self._in_chunk:  # the last chunk (size 0) carries nothing and is no token
            self.chunk_marks.append(len(self.pieces))
            self._in_chunk = False


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
        count_chunks: bool = True,
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
        self._receiver = _Receiver(count_chunks=count_chunks)
        self._count_chunks = count_chunks
        self.bytes_received = 0
        """Body bytes handed to the caller so far."""
        self.chunks_received = 0
        """Chunks of a chunked body completed so far (one chunk per write on most servers); counted only with
        ``count_chunks``."""
        self.body_complete = False
        self.body_prefix = b""
        """The first PREFIX_BYTES of the body read (harness.load.echo looks for the upstream's id in it)."""
        """The body ended as its framing says (the last chunk, Content-Length bytes, or the close that ends it)."""
        self.closed = False
        self._held: list[tuple[bytes, bool]] = []
        """Body that arrived with the head, handed out by the next reads (no more than each asks for): pieces and
        whether a chunk ends with each."""
        self._sock_timeout: float | None = connect_timeout_s
        self._readable: ReadableWait | None = None
        self._fd = -1
        if type(self.sock).__module__.startswith("gevent."):  # under Locust: wait on the hub directly
            from harness.load.cooperative import ReadableWait

            self._fd = self.sock.fileno()
            self._readable = ReadableWait(self._fd)

    def send_request(self, method: str, target: str, headers: Mapping[str, str], body: bytes = b"") -> None:
        """Send the request line, headers and body."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        for line in lines:
            if "\r" in line or "\n" in line:  # it would end the head early (request splitting)
                raise UsageError(f"a request line or header holds a line break: {line!r}")
        self.sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)

    def _recv(self, max_bytes: int, timeout_s: float | None) -> bytes:
        readable = self._readable
        if readable is not None:
            fd = self._fd
            while True:
                readable.wait(timeout_s)  # TimeoutError
                try:
                    return os.read(fd, max_bytes)  # a socket's read(2) is recv(2) without flags
                except BlockingIOError:
                    continue
                except OSError as error:
                    raise StreamBroken(f"connection broken: {error}") from error
        if timeout_s != self._sock_timeout:
            self.sock.settimeout(timeout_s)
            self._sock_timeout = timeout_s
        try:
            return self.sock.recv(max_bytes)
        except TimeoutError:
            raise TimeoutError("no data before the deadline") from None
        except OSError as error:
            raise StreamBroken(f"connection broken: {error}") from error

    def _feed(self, data: bytes) -> None:
        try:
            self._receiver.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise StreamBroken("the server switched protocols") from None
        except httptools.HttpParserError as error:
            raise StreamBroken(f"bad HTTP from server: {error}") from error

    def _at_eof(self) -> None:
        """The server closed the connection: the end of a body framed by the close, else a broken stream."""
        receiver = self._receiver
        if not receiver.head_done:
            raise StreamBroken("connection ended before the response headers")
        if receiver.until_close:
            receiver.complete = True
        if not receiver.complete:
            raise StreamBroken("connection closed before the body was complete")

    def unread_start(self, max_bytes: int = PREFIX_BYTES) -> bytes:
        """The body bytes not read yet: held since the head, then peeked from the socket (not consumed)."""
        held = b"".join(piece for piece, _ in self._held)[:max_bytes]
        if len(held) >= max_bytes or self.closed:
            return held
        timeout = self.sock.gettimeout()
        self.sock.settimeout(0.0)  # never wait: gevent's recv would wait for data despite MSG_DONTWAIT
        try:
            waiting = self.sock.recv(max_bytes, socket.MSG_PEEK)
        except OSError:
            waiting = b""
        finally:
            self.sock.settimeout(timeout)
        return held + waiting  # raw: still framed (chunk sizes), which an id search does not mind

    def read_head(self, timeout_s: float | None = 30.0) -> StreamHead:
        """Wait for the status line and headers (skipping informational ones)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        receiver = self._receiver
        while not receiver.head_done:
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise TimeoutError("no response headers before the deadline")
            data = self._recv(HEAD_READ_BYTES, timeout)
            if not data:
                self._at_eof()
            self._feed(data)
        marks = set(receiver.chunk_marks)
        self._held = [(piece, index + 1 in marks) for index, piece in enumerate(receiver.pieces)]
        receiver.pieces.clear()
        receiver.chunk_marks.clear()
        self.body_complete = receiver.complete and not self._held
        return StreamHead(status=receiver.status, headers=receiver.headers)

    def read(self, max_bytes: int = 65536, timeout_s: float | None = 30.0) -> bytes | None:
        """Up to ``max_bytes`` of body (at most one recv from the socket); None once the body ended cleanly.

        Raises StreamBroken if the connection ends before the body is complete (a truncated chunked body), and
        TimeoutError if nothing arrives for ``timeout_s``.
        """
        if self._held:
            held = self._take_held(max_bytes)
            if len(self.body_prefix) < PREFIX_BYTES:
                self.body_prefix += held[: PREFIX_BYTES - len(self.body_prefix)]
            return held
        receiver = self._receiver
        pieces, marks = receiver.pieces, receiver.chunk_marks
        deadline: float | None = None
        while True:
            if receiver.complete:
                self.body_complete = True
                return None
            data = self._recv(max_bytes, timeout_s)
            if not data:
                self._at_eof()
                self.body_complete = True
                return None
            self._feed(data)
            if pieces or marks:
                body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                pieces.clear()
                if marks:  # b"" when only the CRLF that completes a chunk arrived: the chunk is still news
                    self.chunks_received += len(marks)
                    marks.clear()
                if self.bytes_received < PREFIX_BYTES:  # the start of the body, for echo.echoed_id
                    self.body_prefix += body[: PREFIX_BYTES - self.bytes_received]
                self.bytes_received += len(body)
                self.body_complete = receiver.complete
                return body
            # Only framing arrived (a chunk's size line): read again within what is left of the wait.
            if timeout_s is not None:
                now = time.monotonic()
                deadline = deadline or now + timeout_s
                timeout_s = deadline - now
                if timeout_s <= 0:
                    raise TimeoutError("no data before the deadline")

    def _take_held(self, max_bytes: int) -> bytes:
        held, out, size = self._held, [], 0
        while held and size < max_bytes:
            piece, chunk_ends = held[0]
            take = piece[: max_bytes - size]
            out.append(take)
            size += len(take)
            if len(take) < len(piece):
                held[0] = (piece[len(take) :], chunk_ends)
                break
            held.pop(0)
            if chunk_ends:
                self.chunks_received += 1
        self.bytes_received += size
        self.body_complete = not held and self._receiver.complete
        return b"".join(out)

    def close(self, *, reset: bool = False) -> None:
        """Close the socket; ``reset`` sends RST (SO_LINGER 0) instead of a FIN."""
        if self.closed:
            return
        self.closed = True
        if self._readable is not None:
            self._readable.close()
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
