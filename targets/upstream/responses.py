"""OpenAI Responses: ``POST /v1/responses``, streamed as typed events or answered whole.

A stream as OpenAI sends one, every event ``event: <type>`` with a ``sequence_number``: ``response.created`` and
``response.in_progress``, ``response.output_item.added`` (a message) and ``response.content_part.added`` (its
``output_text`` part) right after the headers; one ``response.output_text.delta`` per token; then
``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done`` and the terminator
``response.completed`` (``response.incomplete`` when ``max_output_tokens`` cut it) with the usage. No ``[DONE]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from targets.upstream.ai import AiRequest, openai_error, optional_limit, request_basics
from targets.upstream.producer import text_of
from targets.upstream.settings import BadField, StreamSettings

__all__ = ["RESPONSES", "ResponsesEncoder"]


def _event(kind: str, payload: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message(item_id: str, status: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [_text_part(text)]
    return {"id": item_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def _response(
    request: AiRequest, response_id: str, status: str, output: list[Any], tokens: int | None
) -> dict[str, Any]:
    usage = None
    if tokens is not None:
        prompt = request.prompt_tokens
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + tokens,
        }
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": None,
        "max_output_tokens": request.max_tokens,
        "model": request.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": request.user if isinstance(request.user, str) else None,
        "metadata": {},
    }


class ResponsesEncoder:
    """Responses streaming events; the text of a delta event is framed from two pieces built once per stream."""

    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, request: AiRequest, stream_id: str, settings: StreamSettings, capped: bool) -> None:
        self._request = request
        self._id = f"resp_{stream_id}"
        self._item = f"msg_{stream_id}"
        self._token_bytes = settings.token_bytes
        self._status = "incomplete" if capped else "completed"
        self._sequence = 0
        self._delta_head = (
            'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
        )
        self._delta_middle = f',"item_id":{json.dumps(self._item)},"output_index":0,"content_index":0,"delta":'
        self._delta_tail = ',"logprobs":[]}\n\n'

    def _next(self, kind: str, payload: dict[str, Any]) -> str:
        text = _event(kind, {"type": kind, "sequence_number": self._sequence, **payload})
        self._sequence += 1
        return text

    def start(self) -> bytes:
        created = _response(self._request, self._id, "in_progress", [], None)
        return (
            self._next("response.created", {"response": created})
            + self._next("response.in_progress", {"response": created})
            + self._next(
                "response.output_item.added", {"output_index": 0, "item": _message(self._item, "in_progress", None)}
            )
            + self._next(
                "response.content_part.added",
                {"item_id": self._item, "output_index": 0, "content_index": 0, "part": _text_part("")},
            )
        ).encode()

    def token(self, index: int, text: str) -> bytes:
        sequence = self._sequence
        self._sequence += 1
        return f"{self._delta_head}{sequence}{self._delta_middle}{json.dumps(text)}{self._delta_tail}".encode()

    def end(self, tokens: int) -> bytes:
        text = text_of(tokens, self._token_bytes)
        where = {"item_id": self._item, "output_index": 0, "content_index": 0}
        item = _message(self._item, self._status, text)
        final = _response(self._request, self._id, self._status, [item], tokens)
        return (
            self._next("response.output_text.done", {**where, "text": text, "logprobs": []})
            + self._next("response.content_part.done", {**where, "part": _text_part(text)})
            + self._next("response.output_item.done", {"output_index": 0, "item": item})
            + self._next(f"response.{self._status}", {"response": final})
        ).encode()


class ResponsesApi:
    name = "openai-responses"

    def parse(self, body: dict[str, Any]) -> AiRequest:
        model, stream = request_basics(body)
        if "input" not in body:
            raise BadField("input", "input is required (a response takes input, not messages)")
        limit = optional_limit(body, "max_output_tokens")
        return AiRequest(model, stream, _input_texts(body["input"]), limit, body.get("user"))

    def encoder(self, request: AiRequest, stream_id: str, settings: StreamSettings, capped: bool) -> ResponsesEncoder:
        return ResponsesEncoder(request, stream_id, settings, capped)

    def answer(self, request: AiRequest, stream_id: str, capped: bool) -> Callable[[str, int], dict[str, Any]]:
        status = "incomplete" if capped else "completed"

        def whole(text: str, tokens: int) -> dict[str, Any]:
            item = _message(f"msg_{stream_id}", status, text)
            return _response(request, f"resp_{stream_id}", status, [item], tokens)

        return whole

    def error(self, error: BadField) -> dict[str, Any]:
        return openai_error(error)


def _input_texts(value: object) -> tuple[str, ...]:
    """The texts of ``input``: a string, or items (messages with string or ``input_text`` content), last first."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not value:
        raise BadField("input", f"input must be a string or a non-empty array of items, got {value!r:.60}")
    texts: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadField(f"input[{index}]", f"input[{index}] must be an object, got {item!r:.60}")
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                part["text"]
                for part in content
                if isinstance(part, dict)
                and part.get("type") in ("input_text", "text")
                and isinstance(part.get("text"), str)
            ]
    return tuple(reversed(texts))


def _is_text(part: object) -> bool:
    return isinstance(part, dict) and part.get("type") in ("input_text", "text") and isinstance(part.get("text"), str)


RESPONSES = ResponsesApi()
