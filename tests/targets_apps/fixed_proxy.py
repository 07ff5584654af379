"""A Starlette proxy to one fixed upstream URL through the shared keep-alive client, forwarding nothing of the
client's request (no header, no query, no body: every client gets the same upstream request), written two ways.

    python -m uvicorn tests.targets_apps.fixed_proxy:app --port 8000                      correct
    python -m uvicorn tests.targets_apps.fixed_proxy:ignores_disconnect_app --port 8000   buggy

``app`` streams the upstream response from inside the response's body iterator: when the client leaves, Starlette
cancels the iterator and ``async with`` closes the upstream stream. ``ignores_disconnect_app`` pumps the upstream
into a queue from a task of its own, the client's response reading from the queue: when the client leaves the
response stops, and the pump reads on, for nobody, to the upstream's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.targets_apps.shared_client import CHAT_URL, CLIENT, FIXED_BODY

_PUMPS: set[asyncio.Task[None]] = set()  # referenced until they end


async def _relay(request: Request) -> StreamingResponse:
    await request.body()

    async def body() -> AsyncIterator[bytes]:
        async with CLIENT.stream("POST", CHAT_URL, json=FIXED_BODY) as response:
            async for chunk in response.aiter_raw():
                yield chunk

    return StreamingResponse(body(), media_type="text/event-stream")


async def _pumped(request: Request) -> StreamingResponse:
    await request.body()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async with CLIENT.stream("POST", CHAT_URL, json=FIXED_BODY) as response:
                async for chunk in response.aiter_raw():
                    queue.put_nowait(chunk)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(pump())
    _PUMPS.add(task)
    task.add_done_callback(_PUMPS.discard)

    async def body() -> AsyncIterator[bytes]:
        while (chunk := await queue.get()) is not None:
            yield chunk

    return StreamingResponse(body(), media_type="text/event-stream")


app = Starlette(routes=[Route("/v1/chat/completions", _relay, methods=["POST"])])
ignores_disconnect_app = Starlette(routes=[Route("/v1/chat/completions", _pumped, methods=["POST"])])
