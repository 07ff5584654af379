"""What every bundled server shares: listening flags, socket tuning, the run loop, stream ids, JSON errors.

The socket tuning exists because of the loopback trap: on Linux loopback the server's send buffer autotunes to
3-4 MB per connection and aiohttp drains only every 64 KiB, so a client that stops reading is not felt by the
server for megabytes. Small send buffers and write high-water marks make back-pressure reach the code under test
within a few KiB, which is what a real network and a real slow client do to a production server.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from aiohttp import web

__all__ = [
    "SocketTuning",
    "add_server_arguments",
    "bad_request",
    "json_body",
    "new_app",
    "non_negative_bytes",
    "positive_seconds",
    "read_body",
    "run_server",
    "stream_id_of",
    "tune_response_transport",
]

log = logging.getLogger("targets")

STREAM_ID_HEADER = "X-Request-ID"
BODY_TIMEOUT = web.AppKey("body_timeout", float)
"""Seconds a request body may take to arrive (``--body-timeout``)."""


@dataclass(frozen=True, slots=True)
class SocketTuning:
    """How accepted connections are tuned before a streamed body is written."""

    sndbuf_bytes: int
    """SO_SNDBUF of each accepted socket; 0 keeps the kernel's autotuning."""
    write_high_water_bytes: int
    """High-water mark of the transport's user-space write buffer; 0 keeps asyncio's 64 KiB."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SocketTuning:
        return cls(sndbuf_bytes=args.sndbuf, write_high_water_bytes=args.write_high_water)


def non_negative_bytes(text: str) -> int:
    """argparse type: a whole number of bytes >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of bytes >= 0, got {text!r}")
    return value


def port_number(text: str) -> int:
    """argparse type: 0 (pick a free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every bundled server takes."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=0, help="port to listen on; 0 picks a free one and prints it"
    )
    parser.add_argument(
        "--sndbuf",
        type=non_negative_bytes,
        default=4096,
        metavar="BYTES",
        help="SO_SNDBUF of accepted sockets, so a slow client is felt at once; 0 = kernel autotuning (default: 4096)",
    )
    parser.add_argument(
        "--write-high-water",
        type=non_negative_bytes,
        default=4096,
        metavar="BYTES",
        help="transport write buffer high-water mark; 0 = asyncio's 64 KiB (default: 4096)",
    )
    parser.add_argument(
        "--header-timeout",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="close a connection whose request headers have not arrived this long after it opened or after its "
        "last response (aiohttp's keep-alive timeout; above aiohttp clients' 15 s pool keep-alive) (default: 30)",
    )
    parser.add_argument(
        "--body-timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="answer 408 to a request whose body has not arrived in this time (default: 10)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def tune_response_transport(request: web.Request, tuning: SocketTuning) -> None:
    """Apply the socket tuning to the connection a streamed response is about to be written to."""
    transport = request.transport
    if transport is None:  # the client is already gone
        return
    if tuning.sndbuf_bytes:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, tuning.sndbuf_bytes)
    if tuning.write_high_water_bytes:
        transport.set_write_buffer_limits(high=tuning.write_high_water_bytes)


def stream_id_of(request: web.Request, body: Mapping[str, Any] | None = None) -> str:
    """The stream id: the X-Request-ID header, else the body's (or query's) ``user`` field, else a new one.

    The body fallback lets streams be matched through a relay that forwards the body but not the headers.
    """
    header = request.headers.get(STREAM_ID_HEADER, "").strip()
    if header:
        return header
    user = body.get("user") if body is not None else request.query.get("user")
    if isinstance(user, str) and user.strip():
        return user.strip()
    return f"anon-{uuid.uuid4().hex[:16]}"


async def read_body(request: web.Request) -> bytes:
    """The request body, within the app's BODY_TIMEOUT (408 past it; aiohttp's client_max_size gives 413)."""
    try:
        async with asyncio.timeout(request.app.get(BODY_TIMEOUT, 10.0)):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=_error_json("the request body did not arrive in time"), content_type="application/json"
        ) from None


async def json_body(request: web.Request) -> Any:
    """The request body as JSON; 400 for anything that is not (bad UTF-8, bad JSON, nesting too deep to parse)."""
    data = await read_body(request)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        reason = "is nested too deeply" if isinstance(error, RecursionError) else "is not valid JSON"
        bad_request(f"request body must be a JSON object, but it {reason}")


def bad_request(message: str) -> NoReturn:
    """Answer 400 with ``{"error": message}``."""
    raise web.HTTPBadRequest(text=_error_json(message), content_type="application/json")


def _error_json(message: str) -> str:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error"}})


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer unknown routes and wrong methods with a JSON body that names the route."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPNotFound:
        raise web.HTTPNotFound(
            text=_error_json(f"no route {request.method} {request.path}"), content_type="application/json"
        ) from None
    except web.HTTPMethodNotAllowed as error:
        raise web.HTTPMethodNotAllowed(
            request.method,
            error.allowed_methods,
            text=_error_json(f"{request.method} not allowed on {request.path}"),
            content_type="application/json",
        ) from None
    return response


def new_app() -> web.Application:
    """An application with the bundled servers' JSON error answers."""
    return web.Application(middlewares=[json_errors])


async def _serve_until_signalled(app: web.Application, args: argparse.Namespace, name: str) -> int:
    host, port = args.host, args.port
    # handler_cancellation: a handler waiting on something else (a silent upstream, a sleep between tokens)
    # learns within milliseconds that its client left, instead of at its next write. Tasks a handler started
    # are not cancelled for it: that is exactly the eager relay's bug, and it stays visible.
    # keepalive_timeout also bounds the wait for a request's headers: aiohttp closes a connection with no request
    # in progress at that deadline, counted from its opening or its last response (a slow-header client included).
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, keepalive_timeout=getattr(args, "header_timeout", 30.0)
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        if error.errno == errno.EADDRINUSE:
            print(
                f"{name}: port {port} on {host} is already in use (pick another, or 0 for a free one)",
                file=sys.stderr,
            )
        else:
            print(f"{name}: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
        return 1
    bound = runner.addresses[0]
    shown_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    # The launcher reads this line to learn the port; keep its form.
    print(f"{name} listening on http://{shown_host}:{bound[1]} pid={os.getpid()}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def run_server(app: web.Application, args: argparse.Namespace, name: str) -> int:
    """Serve ``app`` on ``args.host:args.port`` until SIGTERM or SIGINT; 1 if the port cannot be bound."""
    logging.basicConfig(level=args.log_level.upper(), format=f"{name}: %(levelname)s %(message)s")
    app[BODY_TIMEOUT] = getattr(args, "body_timeout", 10.0)
    return asyncio.run(_serve_until_signalled(app, args, name))
