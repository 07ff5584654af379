"""The eager relay: a background task pumps the upstream into an unbounded buffer; the response drains it.

This is the bug, written the way people write it (the ``start()`` loop of a ReadableStream, in Python): the
pump reads as fast as the upstream produces, whatever the client's pace, so a slow client's backlog grows
without bound; and nothing stops the pump when the client leaves, so the upstream stream stays open and keeps
producing tokens for nobody until it ends by itself.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from targets.relay import (
    BACKGROUND,
    STATS,
    ByteBuffer,
    UpstreamStream,
    open_upstream,
    relay_main,
    start_client_response,
)

__all__ = ["main", "relay"]


async def pump(upstream: UpstreamStream, buffer: ByteBuffer) -> None:
    """Read the whole upstream stream into ``buffer`` as fast as it arrives."""
    error: BaseException | None = None
    try:
        async for chunk in upstream.chunks():
            buffer.put_nowait(chunk)
    except aiohttp.ClientPayloadError as broke:
        error = broke
    finally:
        upstream.close()
        buffer.close(error)


async def relay(request: web.Request, body: bytes) -> web.StreamResponse:
    upstream = await open_upstream(request, body)
    buffer = ByteBuffer(request.app[STATS])
    task = asyncio.create_task(pump(upstream, buffer))
    background = request.app[BACKGROUND]  # keep a reference so the task is not garbage collected
    background.add(task)
    task.add_done_callback(background.discard)
    try:
        response, _ = await start_client_response(request, upstream)
        while (chunk := await buffer.get()) is not None:
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        buffer.detach_reader()


def main(argv: list[str] | None = None) -> int:
    return relay_main("eager", relay, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
