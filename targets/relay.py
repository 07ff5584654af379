"""What the three relays share: flags, the upstream client, forwarding, the byte buffer and the stats route.

The relays differ only in how they move chunks from the upstream response to the client (``eager``, ``lazy``,
``bounded``); everything that is not that difference lives here so the comparison is fair.

Toward the upstream the relays use no keep-alive pool (each stream has its own connection, closed when the
stream ends, so an ESTABLISHED connection to the upstream's port is an open upstream stream) and no connection
limit (a leak must show as a growing count, not as requests stuck at aiohttp's default limit of 100).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import time
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from targets.common import (
    STREAM_ID_HEADER,
    SocketTuning,
    add_server_arguments,
    new_app,
    non_negative_bytes,
    positive_seconds,
    read_body,
    run_server,
    tune_response_transport,
)

__all__ = [
    "ByteBuffer",
    "RelayConfig",
    "RelayStats",
    "UpstreamStream",
    "create_relay_app",
    "open_upstream",
    "relay_main",
    "start_client_response",
]

log = logging.getLogger("targets.relay")

ROUTES = (
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/stream"),
)
"""The upstream's streaming routes, which every relay serves under the same paths."""


@dataclass(frozen=True, slots=True)
class RelayConfig:
    upstream_url: str
    """Base URL of the upstream, e.g. http://127.0.0.1:8000."""
    tuning: SocketTuning
    read_bufsize: int
    """aiohttp client read buffer: how much of the upstream response is read ahead of the relay's code."""
    upstream_rcvbuf: int
    """SO_RCVBUF of the relay's upstream sockets; 0 = kernel autotuning."""
    upstream_mss: int
    """TCP_MAXSEG of the relay's upstream sockets; 0 = loopback's own (about 64 KiB)."""
    connect_timeout_s: float
    high_water_bytes: int
    """High-water mark of the bounded relay's buffer (the others ignore it)."""


@dataclass(slots=True)
class RelayStats:
    """Live counters served at /__harness/stats."""

    open_upstream_streams: int = 0
    active_client_streams: int = 0
    upstream_streams_started: int = 0
    client_streams_started: int = 0
    upstream_errors: int = 0
    buffers: weakref.WeakSet[ByteBuffer] = field(default_factory=weakref.WeakSet)

    def as_json(self) -> dict[str, Any]:
        return {
            "open_upstream_streams": self.open_upstream_streams,
            "active_client_streams": self.active_client_streams,
            "buffered_bytes": sum(buffer.size for buffer in list(self.buffers)),
            "buffers": len(self.buffers),
            "upstream_streams_started": self.upstream_streams_started,
            "client_streams_started": self.client_streams_started,
            "upstream_errors": self.upstream_errors,
            "asyncio_tasks": len(asyncio.all_tasks()),
            "time": time.time(),
        }


CONFIG = web.AppKey("config", RelayConfig)
STATS = web.AppKey("stats", RelayStats)
SESSION = web.AppKey("session", aiohttp.ClientSession)
BACKGROUND: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("background")


class ByteBuffer:
    """A FIFO of chunks that knows how many bytes it holds, with an optional high-water mark.

    Its ``size`` is the relay's ground truth of what it buffers. The bytes count as held until both ends let
    go: the writer closed it and the reader detached (or it was discarded), which is when the chunks become
    garbage in the real program too.
    """

    def __init__(self, stats: RelayStats, high_water_bytes: int | None = None) -> None:
        self._chunks: deque[bytes] = deque()
        self._high_water = high_water_bytes
        self._changed = asyncio.Event()
        self._closed = False
        self._reader_gone = False
        self.error: BaseException | None = None
        self.size = 0
        stats.buffers.add(self)

    def put_nowait(self, chunk: bytes) -> None:
        """Append without waiting: an unbounded buffer."""
        self._chunks.append(chunk)
        self.size += len(chunk)
        self._changed.set()

    async def put(self, chunk: bytes) -> None:
        """Append once the buffer is below its high-water mark."""
        while self._high_water is not None and self.size >= self._high_water:
            self._changed.clear()
            await self._changed.wait()
        self.put_nowait(chunk)

    async def get(self) -> bytes | None:
        """The next chunk, or None once the writer closed the buffer and it is empty."""
        while not self._chunks:
            if self._closed:
                if self.error is not None:
                    raise self.error
                return None
            self._changed.clear()
            await self._changed.wait()
        chunk = self._chunks.popleft()
        self.size -= len(chunk)
        self._changed.set()
        return chunk

    def close(self, error: BaseException | None = None) -> None:
        """No more chunks will come; with ``error``, the reader gets it once the buffer is drained."""
        self._closed = True
        self.error = error
        self._changed.set()
        if self._reader_gone:
            self.discard()

    def detach_reader(self) -> None:
        """The reader left; what is still queued is freed once the writer closes."""
        self._reader_gone = True
        if self._closed:
            self.discard()

    def discard(self) -> None:
        """Drop every chunk held."""
        self._chunks.clear()
        self.size = 0
        self._changed.set()


class UpstreamStream:
    """One open upstream response, counted in ``open_upstream_streams`` until closed."""

    def __init__(self, response: aiohttp.ClientResponse, stats: RelayStats) -> None:
        self.response = response
        self._stats = stats
        self._open = True

    async def chunks(self) -> AsyncGenerator[bytes]:
        """The response body as it arrives (an async generator; pulled, it reads one chunk at a time)."""
        async for chunk in self.response.content.iter_any():
            yield chunk

    def close(self) -> None:
        """Close the upstream connection (at once, whether or not the body was read to its end)."""
        if self._open:
            self._open = False
            self._stats.open_upstream_streams -= 1
            self.response.close()

    async def __aenter__(self) -> UpstreamStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class UpstreamFailed(Exception):
    """The upstream could not be reached or failed before its headers; the relay answers 502."""


async def open_upstream(request: web.Request, body: bytes) -> UpstreamStream:
    """Send the client's request to the upstream and return once its headers arrived.

    Forwards the method, path, query string, body and stream id. Cancelling this (the client left) closes the
    upstream connection, also while the upstream has not answered yet.
    """
    app = request.app
    config, stats = app[CONFIG], app[STATS]
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    if STREAM_ID_HEADER in request.headers:
        headers[STREAM_ID_HEADER] = request.headers[STREAM_ID_HEADER]
    url = config.upstream_url.rstrip("/") + request.rel_url.path_qs
    stats.upstream_streams_started += 1
    stats.open_upstream_streams += 1
    try:
        response = await app[SESSION].request(request.method, url, data=body or None, headers=headers)
    except BaseException as error:
        stats.open_upstream_streams -= 1
        if isinstance(error, aiohttp.ClientError | OSError | asyncio.TimeoutError):
            stats.upstream_errors += 1
            raise UpstreamFailed(f"upstream {config.upstream_url} failed: {error!r}") from error
        raise
    return UpstreamStream(response, stats)


async def start_client_response(
    request: web.Request, upstream: UpstreamStream
) -> tuple[web.StreamResponse, AbstractStreamWriter]:
    """Send the client the upstream's status and content type, with the connection tuned for streaming."""
    response = web.StreamResponse(status=upstream.response.status)
    for name in ("Content-Type", STREAM_ID_HEADER, "Cache-Control"):
        if name in upstream.response.headers:
            response.headers[name] = upstream.response.headers[name]
    tune_response_transport(request, request.app[CONFIG].tuning)
    writer = await response.prepare(request)
    assert writer is not None
    return response, writer


Relay = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


def _handler(relay: Relay) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a relay's streaming code with what all relays do the same way: count, 502, log one line."""

    async def handle(request: web.Request) -> web.StreamResponse:
        stats = request.app[STATS]
        body = await read_body(request)
        stats.client_streams_started += 1
        stats.active_client_streams += 1
        try:
            return await relay(request, body)
        except UpstreamFailed as error:
            return web.json_response({"error": {"message": str(error), "type": "bad_gateway"}}, status=502)
        except aiohttp.ClientPayloadError as error:
            # The stream had started: end it where it broke, without the final chunk, so the client sees a
            # truncated stream rather than a complete one, and say so in one line.
            log.warning("upstream stream broke off: %s %s: %s", request.method, request.path_qs, error)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=502)  # never sent: aiohttp finds the connection closed
        finally:
            stats.active_client_streams -= 1

    return handle


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS].as_json())


def _socket_factory(rcvbuf: int, mss: int) -> Callable[[Any], socket.socket]:
    def make(addr_info: Any) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=kind, proto=proto)
        # Set before connecting, so the window the upstream sees is small from the first byte.
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss:
            # Loopback's MSS (about 64 KiB) with small buffers means no segment is ever full-sized, so every ACK
            # waits for the delayed-ACK timer; an Ethernet-sized MSS makes loopback ACK like a real network.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        return sock

    return make


async def _client_session(app: web.Application) -> Any:
    config = app[CONFIG]
    connector = aiohttp.TCPConnector(
        limit=0,
        force_close=True,
        socket_factory=_socket_factory(config.upstream_rcvbuf, config.upstream_mss)
        if config.upstream_rcvbuf or config.upstream_mss
        else None,
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout_s)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, read_bufsize=config.read_bufsize, auto_decompress=False
    ) as session:
        app[SESSION] = session
        yield
    background: set[asyncio.Task[None]] = app[BACKGROUND]
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)


def create_relay_app(config: RelayConfig, relay: Relay) -> web.Application:
    """An application serving the upstream's streaming routes through ``relay``, plus /__harness/stats."""
    app = new_app()
    app[CONFIG] = config
    app[STATS] = RelayStats()
    app[BACKGROUND] = set()
    app.cleanup_ctx.append(_client_session)
    handler = _handler(relay)
    for method, path in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get("/__harness/stats", _stats)
    return app


def _upstream_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL with a host, got {text!r}")
    return text


def relay_main(name: str, relay: Relay, description: str, argv: list[str] | None = None) -> int:
    """Parse the relay flags and serve ``relay`` until SIGTERM."""
    parser = argparse.ArgumentParser(prog=f"python -m targets.{name}", description=description)
    add_server_arguments(parser)
    parser.add_argument(
        "--upstream",
        type=_upstream_url,
        required=True,
        metavar="URL",
        help="base URL of the upstream to relay, e.g. http://127.0.0.1:8000",
    )
    parser.add_argument(
        "--read-bufsize",
        type=non_negative_bytes,
        default=4096,
        metavar="BYTES",
        help="aiohttp client read buffer toward the upstream (aiohttp's default is 256 KiB, "
        "which hides back-pressure; default: 4096)",
    )
    parser.add_argument(
        "--upstream-rcvbuf",
        type=non_negative_bytes,
        default=4096,
        metavar="BYTES",
        help="SO_RCVBUF of upstream sockets; 0 = kernel autotuning (default: 4096)",
    )
    parser.add_argument(
        "--upstream-mss",
        type=non_negative_bytes,
        default=1448,
        metavar="BYTES",
        help="TCP_MAXSEG of upstream sockets, an Ethernet-sized segment; 0 = loopback's own (default: 1448)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="timeout for connecting to the upstream (default: 10)",
    )
    parser.add_argument(
        "--high-water",
        type=non_negative_bytes,
        default=65536,
        metavar="BYTES",
        help="high-water mark of the bounded relay's buffer (default: 65536)",
    )
    args = parser.parse_args(argv)
    if args.read_bufsize < 1:
        parser.error(f"argument --read-bufsize: expected a whole number of bytes >= 1, got {args.read_bufsize}")
    config = RelayConfig(
        upstream_url=args.upstream,
        tuning=SocketTuning.from_args(args),
        read_bufsize=args.read_bufsize,
        upstream_rcvbuf=args.upstream_rcvbuf,
        upstream_mss=args.upstream_mss,
        connect_timeout_s=args.connect_timeout,
        high_water_bytes=args.high_water,
    )
    return run_server(create_relay_app(config, relay), args, name)
