"""A FastAPI AI gateway: it validates the client's chat request, rebuilds it for its one upstream (its own model
name, the messages' roles and text only: no ``user``, no client header, no query string) and streams the answer
back through the shared keep-alive client, written two ways.

    python -m uvicorn tests.targets_apps.gateway:app --port 8000          correct
    python -m uvicorn tests.targets_apps.gateway:billing_app --port 8000  buggy

Only the prompt survives the rebuild, so the harness's tag in the prompt is the one way a stream id reaches the
upstream. Both read the upstream from a task of their own that counts the completion's chunks for the usage records,
through a queue of a few chunks (a slow client holds the upstream back). ``app`` stops that task when the client
leaves. ``billing_app`` lets it read on to the upstream's end "so the bill is
complete": the upstream produces the whole answer for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from tests.targets_apps.shared_client import CHAT_URL, CLIENT

MODEL = "gateway-upstream-model"
USAGE: dict[str, int] = {"chunks": 0}
_READERS: set[asyncio.Task[None]] = set()  # referenced until they end
QUEUED_CHUNKS = 8
"""At most this many upstream chunks wait for a slow client: the reader waits for the client, the upstream for it."""


async def _rebuilt(request: Request) -> dict[str, Any]:
    incoming = await request.json()
    body: dict[str, Any] = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": str(m["role"]), "content": str(m["content"])} for m in incoming["messages"]],
    }
    if isinstance(incoming.get("max_tokens"), int):
        body["max_tokens"] = incoming["max_tokens"]
    return body


def _gateway(*, bill_everything: bool) -> FastAPI:
    gateway = FastAPI()

    @gateway.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        body = await _rebuilt(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_CHUNKS)
        client_gone = asyncio.Event()

        async def read_and_bill() -> None:
            try:
                async with CLIENT.stream("POST", CHAT_URL, json=body) as response:
                    async for chunk in response.aiter_raw():
                        USAGE["chunks"] += 1
                        if not client_gone.is_set():
                            await queue.put(chunk)
            finally:
                if not client_gone.is_set():
                    await queue.put(None)

        async def relay() -> AsyncIterator[bytes]:
            reader = asyncio.create_task(read_and_bill())
            _READERS.add(reader)
            reader.add_done_callback(_READERS.discard)
            try:
                while (chunk := await queue.get()) is not None:
                    yield chunk
            finally:
                if bill_everything:
                    client_gone.set()  # the client left: the reader reads on to the end for the bill
                    while not queue.empty():
                        queue.get_nowait()  # (and is no longer held up by a full queue)
                else:
                    reader.cancel()  # the client left: stop the upstream stream (the bill ends here too)

        return StreamingResponse(relay(), media_type="text/event-stream")

    return gateway


app = _gateway(bill_everything=False)
billing_app = _gateway(bill_everything=True)
