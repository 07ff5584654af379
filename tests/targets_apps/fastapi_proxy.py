"""A FastAPI streaming proxy in front of the fake upstream (``$STREAM_HARNESS_UPSTREAM_URL``), written two ways.

    python -m uvicorn tests.targets_apps.fastapi_proxy:eager_app --port 8000
    python -m uvicorn tests.targets_apps.fastapi_proxy:lazy_app --port 8000

``eager_app`` starts a background task per request that reads the whole upstream stream into an unbounded queue,
and answers from the queue: when the client leaves, the response stops, the task reads on to the upstream's end.
``lazy_app`` opens the upstream on the first pull, pulls one upstream chunk per chunk it sends, and closes the
upstream response in a shielded ``finally`` when the client leaves (Starlette cancels the body iterator). Both
details were found with the harness: without them, clients leaving before the first token left upstream streams
running for nobody.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

UPSTREAM_URL = os.environ.get("STREAM_HARNESS_UPSTREAM_URL", "http://127.0.0.1:8001")
_FORWARDED = ("x-request-id", "content-type", "accept")
_TASKS: set[asyncio.Task[None]] = set()  # keep the eager pumps referenced until they end


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=UPSTREAM_URL, timeout=httpx.Timeout(60.0, connect=5.0))


async def _open(client: httpx.AsyncClient, request: Request, body: bytes) -> httpx.Response:
    upstream = client.build_request(
        "POST",
        "/v1/chat/completions",
        params=request.query_params,
        content=body,
        headers={k: v for k, v in request.headers.items() if k in _FORWARDED},
    )
    return await client.send(upstream, stream=True)


def _eager() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()  # unbounded: the upstream never waits for the client
        client = _client()
        response = await _open(client, request, await request.body())

        async def pump() -> None:
            try:
                async for chunk in response.aiter_raw():
                    queue.put_nowait(chunk)
            finally:
                queue.put_nowait(None)
                await response.aclose()
                await client.aclose()

        task = asyncio.create_task(pump())
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

        async def body() -> AsyncIterator[bytes]:
            while (chunk := await queue.get()) is not None:
                yield chunk

        return StreamingResponse(body(), media_type="text/event-stream")

    return app


def _lazy() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        body_bytes = await request.body()

        async def body() -> AsyncIterator[bytes]:
            # The upstream is opened here, on the first pull, not in the endpoint: Starlette drops a body iterator
            # it never started when the client is already gone, and a stream opened before it would be left open.
            client = _client()
            response: httpx.Response | None = None
            try:
                response = await _open(client, request, body_bytes)
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                # The client left (or the stream ended): close the upstream stream now. Shielded: when the client
                # leaves while this generator awaits the upstream, Starlette cancels its task group, and in a
                # cancelled anyio scope every await raises at once, so an unshielded aclose() never runs and the
                # upstream streams on for nobody.
                with anyio.CancelScope(shield=True):
                    if response is not None:
                        await response.aclose()
                    await client.aclose()

        return StreamingResponse(body(), media_type="text/event-stream")

    return app


eager_app = _eager()
lazy_app = _lazy()
