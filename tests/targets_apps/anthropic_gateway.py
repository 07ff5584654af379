"""A Starlette AI gateway that speaks Anthropic Messages to its clients and OpenAI Chat Completions to its one
upstream, as such translating gateways are written: it rebuilds the request (its own model name, the messages'
text, ``max_tokens``; no header, no ``metadata``, no query string), calls the upstream through the shared keep-alive
client, and turns each ``chat.completion.chunk`` into Anthropic's events.

    python -m uvicorn tests.targets_apps.anthropic_gateway:app --port 8000

Only the prompt survives the translation, so the harness's tag in it is the one way a stream id reaches the
upstream. When the client leaves, Starlette cancels the response's generator, which closes the upstream stream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.targets_apps.shared_client import CHAT_URL, CLIENT

MODEL = "gateway-upstream-model"
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n".encode()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


def _openai_request(incoming: dict[str, Any]) -> dict[str, Any]:
    messages = [{"role": "system", "content": _text(incoming["system"])}] if incoming.get("system") else []
    messages += [{"role": m["role"], "content": _text(m["content"])} for m in incoming["messages"]]
    return {
        "model": MODEL,
        "messages": messages,
        "max_tokens": incoming["max_tokens"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def _translated(body: dict[str, Any], model: str) -> AsyncIterator[bytes]:
    message_id = f"msg_{uuid.uuid4().hex}"
    stop_reason, output_tokens = "end_turn", 0
    async with CLIENT.stream("POST", CHAT_URL, json=body) as upstream:
        start = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": []}
        start |= {"stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        yield _event("message_start", {"message": start})
        yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        async for line in upstream.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("usage"):
                output_tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                text = choice.get("delta", {}).get("content")
                if text:
                    yield _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}})
                if choice.get("finish_reason"):
                    stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
    yield _event("content_block_stop", {"index": 0})
    yield _event(
        "message_delta",
        {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": output_tokens}},
    )
    yield _event("message_stop", {})


async def messages(request: Request) -> Response:
    incoming = await request.json()
    if not isinstance(incoming.get("max_tokens"), int):
        error = {"type": "invalid_request_error", "message": "max_tokens: Field required"}
        return JSONResponse({"type": "error", "error": error}, status_code=400)
    body = _openai_request(incoming)
    return StreamingResponse(_translated(body, str(incoming.get("model", MODEL))), media_type="text/event-stream")


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"]), Route("/", health)])
