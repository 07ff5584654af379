"""OpenAI Chat Completions: ``POST /v1/chat/completions``, streamed as ``chat.completion.chunk`` events or whole."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from targets.common import bad_request, json_body, stream_id_of
from targets.upstream.producer import stream_tokens, token_text
from targets.upstream.settings import StreamSettings
from targets.upstream.state import STATE

__all__ = ["ChatEncoder", "chat_completions"]


class ChatEncoder:
    """OpenAI ``chat.completion.chunk`` events; the JSON around the content is built once per stream."""

    content_type = "text/event-stream"

    def __init__(self, completion_id: str, model: str) -> None:
        head = json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
            },
            separators=(",", ":"),
        )[:-1]
        self._first = f'data: {head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":'
        self._next = f'data: {head},"choices":[{{"index":0,"delta":{{"content":'
        self._tail = '},"logprobs":null,"finish_reason":null}]}\n\n'
        self._end = f'data: {head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]}}\n\n'
        self._sent_first = False

    def token(self, index: int, text: str) -> bytes:
        prefix = self._next if self._sent_first else self._first
        self._sent_first = True
        return (prefix + json.dumps(text) + self._tail).encode()

    def end(self) -> bytes:
        return (self._end + "data: [DONE]\n\n").encode()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    if not isinstance(body, dict):
        bad_request(f"request body must be a JSON object, got {type(body).__name__}")
    state = request.app[STATE]
    settings = state.defaults.overridden(request.query, body)
    stream_id = stream_id_of(request, body)
    model = body["model"] if isinstance(body.get("model"), str) else state.model
    if body.get("stream", False) is True:
        return await stream_tokens(request, settings, stream_id, ChatEncoder(f"chatcmpl-{stream_id}", model))
    return await _complete(request, settings, stream_id, model)


async def _complete(request: web.Request, settings: StreamSettings, stream_id: str, model: str) -> web.Response:
    """The non-streaming answer: all tokens at once, after the time streaming them would have taken."""
    state = request.app[STATE]
    record = state.open(stream_id, request.path)
    try:
        streaming_s = settings.tokens / settings.rate if settings.rate else 0.0
        await asyncio.sleep(settings.header_delay_s + settings.first_token_delay_s + streaming_s)
        text = "".join(token_text(i, settings.token_bytes) for i in range(settings.tokens))
        for _ in range(settings.tokens):
            state.produced(record, settings.token_bytes)
        payload = {
            "id": f"chatcmpl-{stream_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 0,
                "completion_tokens": settings.tokens,
                "total_tokens": settings.tokens,
            },
        }
        response = web.json_response(payload, headers={"X-Request-ID": stream_id})
        state.close(record, "completed")
        return response
    finally:
        state.close(record, "peer_closed")
