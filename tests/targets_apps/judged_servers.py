"""aiohttp streaming relays to one fixed upstream URL, written the way people write them, each bug with its fix.

    python -m tests.targets_apps.judged_servers --port 8000 --upstream http://127.0.0.1:8001 --variant V

Every variant forwards the request body and query (they carry the harness's tag) to ``{upstream}{path}`` through one
shared ``aiohttp.ClientSession`` (a keep-alive pool), streams the answer back, and cancels the upstream when its
client leaves (``handler_cancellation``). Accepted sockets get a 64 KiB SO_SNDBUF, as a server tuned for many
streams does, so a client that reads nothing is felt after some KiB rather than megabytes. The variants differ in
one thing each:

    heartbeat-leak   a keep-alive task per stream (": ping" every 15 s) is cancelled after the stream ends, not in a
                     ``finally``: when a client disconnects, its handler is cancelled first and the task lives on,
                     one per disconnected client, forever (it swallows the write errors)
    heartbeat        the same task, cancelled in ``finally``
    audit-leak       keeps every stream's transcript (a 32 KiB buffer per stream, filled as the tokens pass) in an
                     in-memory audit log that is never trimmed: memory grows with every request, whoever the client
    audit            the same log, bounded to the last 50 streams
    no-send-timeout  writes to the client with no timeout: a client that reads nothing holds its handler and its
                     upstream for as long as it stays connected
    send-timeout     gives each write 3 s, then drops the client (and so its upstream)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

VARIANTS = ("heartbeat-leak", "heartbeat", "audit-leak", "audit", "no-send-timeout", "send-timeout")
SESSION = web.AppKey("session", aiohttp.ClientSession)
SNDBUF = 64 * 1024
SEND_TIMEOUT_S = 3.0
HEARTBEAT_S = 15.0
TRANSCRIPT_BYTES = 32 * 1024

Writer = Callable[[web.Request, web.StreamResponse, bytes], Awaitable[bool]]


async def _heartbeat(response: web.StreamResponse) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write(b": ping\n\n")


async def _write(request: web.Request, response: web.StreamResponse, chunk: bytes) -> bool:
    await response.write(chunk)
    return True


async def _write_with_timeout(request: web.Request, response: web.StreamResponse, chunk: bytes) -> bool:
    try:
        await asyncio.wait_for(response.write(chunk), SEND_TIMEOUT_S)
    except TimeoutError:
        if request.transport is not None:
            request.transport.close()  # the client reads nothing: let it go, and its upstream with it
        return False
    return True


def make_app(upstream: str, variant: str) -> web.Application:
    audit: collections.deque[bytes] | list[bytes] = collections.deque(maxlen=50) if variant == "audit" else []
    write: Writer = _write_with_timeout if variant == "send-timeout" else _write

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(base_url=upstream, timeout=aiohttp.ClientTimeout(total=None, connect=5))
        yield
        await app[SESSION].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with request.app[SESSION].post(request.path_qs, data=body, headers=headers) as upstream_response:
            response = web.StreamResponse(
                status=upstream_response.status,
                headers={"Content-Type": upstream_response.headers.get("Content-Type", "text/event-stream")},
            )
            await response.prepare(request)
            heartbeat = asyncio.create_task(_heartbeat(response)) if variant.startswith("heartbeat") else None
            transcript, filled = bytearray(TRANSCRIPT_BYTES), 0  # the stream's first 32 KiB, for the audit log
            try:
                async for chunk in upstream_response.content.iter_any():
                    kept = chunk[: TRANSCRIPT_BYTES - filled]
                    transcript[filled : filled + len(kept)] = kept
                    filled += len(kept)
                    if not await write(request, response, chunk):
                        return response
                await response.write_eof()
                if heartbeat is not None and variant == "heartbeat-leak":
                    heartbeat.cancel()  # the bug: only reached when the stream ends normally
            finally:
                if heartbeat is not None and variant == "heartbeat":
                    heartbeat.cancel()
                if variant.startswith("audit"):
                    audit.append(transcript)
        return response

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/{path:.*}", relay)
    return app


async def serve(port: int, upstream: str, variant: str) -> None:
    runner = web.AppRunner(make_app(upstream, variant), handler_cancellation=True, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)  # accepted sockets inherit it
    sock.bind(("127.0.0.1", port))
    await web.SockSite(runner, sock).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.upstream, args.variant))


if __name__ == "__main__":
    main()
