"""OpenAI Chat Completions: ``POST /v1/chat/completions``, streamed as ``chat.completion.chunk`` events or whole.

A stream as OpenAI sends one: a role-only first chunk (``{"role": "assistant", "content": ""}``) right after the
headers, one chunk per content delta, a chunk with an empty delta and the ``finish_reason`` (``stop``, or
``length`` when ``max_tokens`` cut it), with ``stream_options.include_usage`` a last chunk with empty ``choices``
and the ``usage`` (every chunk before it then carries ``"usage": null``), and ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from targets.upstream.ai import AiRequest, message_texts, openai_error, optional_limit, request_basics
from targets.upstream.settings import BadField, StreamSettings

__all__ = ["CHAT", "ChatEncoder"]


def _usage(request: AiRequest, tokens: int) -> dict[str, int]:
    prompt = request.prompt_tokens
    return {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}


class ChatEncoder:
    """OpenAI ``chat.completion.chunk`` events; the JSON around the content is built once per stream."""

    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, request: AiRequest, completion_id: str, capped: bool) -> None:
        self._request = request
        head = json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": request.model,
                "system_fingerprint": "fp_stream_harness",
            },
            separators=(",", ":"),
        )[:-1]
        self._head = head
        self._usage = ',"usage":null' if request.include_usage else ""
        self._next = f'data: {head},"choices":[{{"index":0,"delta":{{"content":'
        self._tail = '},"logprobs":null,"finish_reason":null}]' + self._usage + "}\n\n"
        self._finish = "length" if capped else "stop"

    def start(self) -> bytes:
        delta = '{"role":"assistant","content":"","refusal":null}'
        choice = f'[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":null}}]'
        return f'data: {self._head},"choices":{choice}{self._usage}}}\n\n'.encode()

    def token(self, index: int, text: str) -> bytes:
        return (self._next + json.dumps(text) + self._tail).encode()

    def end(self, tokens: int) -> bytes:
        choice = f'[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{self._finish}"}}]'
        text = f'data: {self._head},"choices":{choice}{self._usage}}}\n\n'
        if self._usage:
            usage = json.dumps(_usage(self._request, tokens), separators=(",", ":"))
            text += f'data: {self._head},"choices":[],"usage":{usage}}}\n\n'
        return (text + "data: [DONE]\n\n").encode()


class ChatApi:
    name = "openai-chat"

    def parse(self, body: dict[str, Any]) -> AiRequest:
        model, stream = request_basics(body)
        if "messages" not in body:
            raise BadField("messages", "messages is required (a chat completion takes messages, not input)")
        texts = message_texts(body["messages"], field="messages", text_types=("text",))
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise BadField("stream_options", f"stream_options must be an object, got {options!r}")
        include_usage = bool(options and options.get("include_usage") is True)
        limit = optional_limit(body, "max_completion_tokens", "max_tokens")
        return AiRequest(model, stream, texts, limit, body.get("user"), include_usage)

    def encoder(self, request: AiRequest, stream_id: str, settings: StreamSettings, capped: bool) -> ChatEncoder:
        return ChatEncoder(request, f"chatcmpl-{stream_id}", capped)

    def answer(self, request: AiRequest, stream_id: str, capped: bool) -> Callable[[str, int], dict[str, Any]]:
        def whole(text: str, tokens: int) -> dict[str, Any]:
            message = {"role": "assistant", "content": text, "refusal": None}
            return {
                "id": f"chatcmpl-{stream_id}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.model,
                "system_fingerprint": "fp_stream_harness",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "length" if capped else "stop",
                    }
                ],
                "usage": _usage(request, tokens),
            }

        return whole

    def error(self, error: BadField) -> dict[str, Any]:
        return openai_error(error)


CHAT = ChatApi()
