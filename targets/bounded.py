"""The bounded relay: an upstream reader fills a buffer up to a high-water mark; the response drains it.

Node-stream style: the reader runs ahead of the client by at most ``--high-water`` bytes (plus one chunk), so
memory per connection is bounded and throughput does not wait on each write; when the client leaves, the
handler cancels the reader and closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

from targets.relay import (
    CONFIG,
    STATS,
    ByteBuffer,
    UpstreamStream,
    open_upstream,
    relay_main,
    start_client_response,
)

__all__ = ["main", "relay"]


async def fill(upstream: UpstreamStream, buffer: ByteBuffer) -> None:
    """Read the upstream into ``buffer``, waiting whenever it is at its high-water mark."""
    error: BaseException | None = None
    try:
        async for chunk in upstream.chunks():
            await buffer.put(chunk)
    except aiohttp.ClientPayloadError as broke:
        error = broke
    finally:
        buffer.close(error)


async def relay(request: web.Request, body: bytes) -> web.StreamResponse:
    async with await open_upstream(request, body) as upstream:
        buffer = ByteBuffer(request.app[STATS], request.app[CONFIG].high_water_bytes)
        reader = asyncio.create_task(fill(upstream, buffer))
        try:
            response, writer = await start_client_response(request, upstream)
            while (chunk := await buffer.get()) is not None:
                await response.write(chunk)
                await writer.drain()
            await response.write_eof()
            return response
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            buffer.discard()


def main(argv: list[str] | None = None) -> int:
    return relay_main("bounded", relay, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
