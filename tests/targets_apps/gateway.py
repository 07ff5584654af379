"""A FastAPI AI gateway: it validates the client's chat request, rebuilds it for its one upstream (its own model
name, the messages' roles and text only: no ``user``, no client header, no query string) and streams the answer
back through the shared keep-alive client, written two ways.

    python -m uvicorn tests.targets_apps.gateway:app --port 8000          correct
    python -m uvicorn tests.targets_apps.gateway:billing_app --port 8000  buggy

Only the prompt survives the rebuild, so the harness's tag in the prompt is the one way a stream id reaches the
upstream. Both read the upstream from a task of their own that counts the completion's chunks for the usage records.
``app`` stops that task when the client leaves. ``billing_app`` lets it read on to the upstream's end "so the bill is
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
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def read_and_bill() -> None:
            try:
                async with CLIENT.stream("POST", CHAT_URL, json=body) as response:
                    async for chunk in response.aiter_raw():
                        USAGE["chunks"] += 1
                        queue.put_nowait(chunk)
            finally:
                queue.put_nowait(None)

        async def relay() -> AsyncIterator[bytes]:
            reader = asyncio.create_task(read_and_bill())
            _READERS.add(reader)
            reader.add_done_callback(_READERS.discard)
            try:
                while (chunk := await queue.get()) is not None:
                    yield chunk
            finally:
                if not bill_everything:
                    reader.cancel()  # the client left: stop the upstream stream (the bill ends here too)

        return StreamingResponse(relay(), media_type="text/event-stream")

    return gateway


app = _gateway(bill_everything=False)
billing_app = _gateway(bill_everything=True)
