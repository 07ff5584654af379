"""A Starlette proxy that peeks at the upstream's first chunk before it answers (so an upstream error can still
become the client's status code), calling one fixed upstream URL and forwarding nothing, written two ways.

    python -m uvicorn tests.targets_apps.silent_proxy:waits_app --port 8000     buggy
    python -m uvicorn tests.targets_apps.silent_proxy:notices_app --port 8000   correct

``waits_app`` awaits the upstream's headers and first chunk in the endpoint, then answers with the rest and closes
the upstream in a background task, the proxy of Starlette's and httpx's documentation. While it waits it does not
listen to its client: a client that leaves while the upstream is silent (AI upstreams think for seconds before the
first token) keeps its upstream stream open until the upstream finally speaks. ``notices_app`` waits the same way
but races the wait against the client's disconnect and closes the upstream stream as soon as the client is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.targets_apps.shared_client import CHAT_URL, CLIENT, FIXED_BODY


async def _open_and_peek() -> tuple[httpx.Response, AsyncIterator[bytes], bytes]:
    response = await CLIENT.send(CLIENT.build_request("POST", CHAT_URL, json=FIXED_BODY), stream=True)
    chunks = response.aiter_raw()
    try:
        first = await anext(chunks)
    except BaseException:
        await response.aclose()
        raise
    return response, chunks, first


def _answer(response: httpx.Response, chunks: AsyncIterator[bytes], first: bytes) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(
        body(),
        status_code=response.status_code,
        media_type="text/event-stream",
        background=BackgroundTask(response.aclose),
    )


async def _waits(request: Request) -> StreamingResponse:
    await request.body()
    return _answer(*await _open_and_peek())


async def _notices(request: Request) -> Response:
    await request.body()
    opening = asyncio.ensure_future(_open_and_peek())
    gone = asyncio.ensure_future(_disconnected(request))
    await asyncio.wait({opening, gone}, return_when=asyncio.FIRST_COMPLETED)
    if not opening.done():
        opening.cancel()  # closes the upstream stream (httpx shields its close from the cancellation)
        await asyncio.gather(opening, return_exceptions=True)
        return Response(status_code=499)
    gone.cancel()
    return _answer(*opening.result())


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


waits_app = Starlette(routes=[Route("/v1/chat/completions", _waits, methods=["POST"])])
notices_app = Starlette(routes=[Route("/v1/chat/completions", _notices, methods=["POST"])])
