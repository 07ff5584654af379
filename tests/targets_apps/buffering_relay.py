"""A Starlette relay to one fixed upstream URL (forwarding nothing) that decouples reading the upstream from
writing the client with a queue and a reader task, written two ways.

    python -m uvicorn tests.targets_apps.buffering_relay:unbounded_app --port 8000   buggy
    python -m uvicorn tests.targets_apps.buffering_relay:bounded_app --port 8000     correct

Both stop the reader task (and so the upstream stream) when the client leaves. ``unbounded_app``'s queue has no
limit: with a client that reads slowly, everything the upstream sends waits in the relay's memory. ``bounded_app``
holds at most a few chunks: the reader waits for the client, and the upstream for the reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.targets_apps.shared_client import CHAT_URL, CLIENT, FIXED_BODY

BOUNDED_CHUNKS = 8


def _relay(maxsize: int) -> Starlette:
    async def chat(request: Request) -> StreamingResponse:
        await request.body()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize)

        async def read_upstream() -> None:
            try:
                async with CLIENT.stream("POST", CHAT_URL, json=FIXED_BODY) as response:
                    async for chunk in response.aiter_raw():
                        await queue.put(chunk)
            finally:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(None)

        async def body() -> AsyncIterator[bytes]:
            reader = asyncio.create_task(read_upstream())
            try:
                while (chunk := await queue.get()) is not None:
                    yield chunk
            finally:
                reader.cancel()  # the client left (or the stream ended): stop reading the upstream

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


unbounded_app = _relay(0)
bounded_app = _relay(BOUNDED_CHUNKS)
