"""Anthropic Messages: ``POST /v1/messages``, streamed as named events or answered whole.

A stream as Anthropic sends one, every event ``event: <type>``: ``message_start`` (the message, empty content),
``content_block_start`` (a text block) and ``ping`` right after the headers; one ``content_block_delta`` with a
``text_delta`` per token; then ``content_block_stop``, ``message_delta`` (``stop_reason`` ``end_turn``, or
``max_tokens`` when the limit cut it, and the output tokens) and the terminator ``message_stop``.
``max_tokens`` is required, as Anthropic's API requires it. Errors are ``{"type": "error", "error": {...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from targets.upstream.ai import AiRequest, message_texts, request_basics
from targets.upstream.settings import LIMITS, BadField, StreamSettings, whole

__all__ = ["MESSAGES", "MessagesEncoder"]


def _event(kind: str, payload: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload}, separators=(',', ':'))}\n\n"


def _message(request: AiRequest, stream_id: str, content: list[Any], stop: str | None, tokens: int) -> dict[str, Any]:
    return {
        "id": f"msg_{stream_id}",
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": request.prompt_tokens, "output_tokens": tokens},
    }


class MessagesEncoder:
    content_type = "text/event-stream; charset=utf-8"

    _DELTA_HEAD = (
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
    )

    def __init__(self, request: AiRequest, stream_id: str, capped: bool) -> None:
        self._request = request
        self._stream_id = stream_id
        self._stop = "max_tokens" if capped else "end_turn"

    def start(self) -> bytes:
        message = _message(self._request, self._stream_id, [], None, 1)
        return (
            _event("message_start", {"message": message})
            + _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            + _event("ping", {})
        ).encode()

    def token(self, index: int, text: str) -> bytes:
        return (self._DELTA_HEAD + json.dumps(text) + "}}\n\n").encode()

    def end(self, tokens: int) -> bytes:
        return (
            _event("content_block_stop", {"index": 0})
            + _event(
                "message_delta",
                {"delta": {"stop_reason": self._stop, "stop_sequence": None}, "usage": {"output_tokens": tokens}},
            )
            + _event("message_stop", {})
        ).encode()


class MessagesApi:
    name = "anthropic"

    def parse(self, body: dict[str, Any]) -> AiRequest:
        model, stream = request_basics(body)
        if "messages" not in body:
            raise BadField("messages", "messages: Field required")
        if body.get("max_tokens") is None:
            raise BadField("max_tokens", "max_tokens: Field required")
        limit = whole("max_tokens", body["max_tokens"], LIMITS["tokens"], minimum=1)
        texts = message_texts(body["messages"], field="messages", text_types=("text",))
        system = body.get("system")  # a string, or text blocks
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        if isinstance(blocks, list):
            texts += tuple(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))
        metadata = body.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
        return AiRequest(model, stream, texts, limit, user)

    def encoder(self, request: AiRequest, stream_id: str, settings: StreamSettings, capped: bool) -> MessagesEncoder:
        return MessagesEncoder(request, stream_id, capped)

    def answer(self, request: AiRequest, stream_id: str, capped: bool) -> Callable[[str, int], dict[str, Any]]:
        stop = "max_tokens" if capped else "end_turn"

        def answer(text: str, tokens: int) -> dict[str, Any]:
            return _message(request, stream_id, [{"type": "text", "text": text}], stop, tokens)

        return answer

    def error(self, error: BadField) -> dict[str, Any]:
        return {"type": "error", "error": {"type": "invalid_request_error", "message": error.message}}


MESSAGES = MessagesApi()
