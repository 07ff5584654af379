"""The HTTP request that opens one stream: the API's default request, or the target's own template
(``--request``, ``--request-body``), carrying the stream id, the prompt tag and the stream's own upstream settings.

Every AI request carries the prompt tag (``harness.load.tag``) in its prompt text (the last user message for
``openai-chat`` and ``anthropic``, ``input`` for ``openai-responses``), the id in ``X-Request-ID`` and in the body's
user field (``user``, Anthropic's ``metadata.user_id``); the stream's own settings travel in the tag and in the
query string. ``chunked`` has no prompt: its id goes in ``?user=``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from harness.load.behaviour import Behaviour
from harness.load.stream_settings import StreamSettings
from harness.load.tag import format_tag

__all__ = ["MAX_TOKENS", "PROMPT", "StreamRequest", "build_request"]

PROMPT = "stream-harness"
"""The prompt text of the default requests, before the tag."""

MAX_TOKENS = 1_000_000
"""The token limit of requests whose stream names no ``tokens`` (the fake upstream's cap): the upstream's
defaults (the phase's, else the flags') decide the length, not the request."""


@dataclass(frozen=True, slots=True)
class StreamRequest:
    method: str
    path: str
    """Path and query string."""
    headers: dict[str, str]
    body: bytes


def build_request(stream_id: str, behaviour: Behaviour, settings: StreamSettings) -> StreamRequest:
    """The request of stream ``stream_id`` for ``settings.api``."""
    own = dict(settings.upstream) | dict(behaviour.upstream)
    query = list(own.items())
    headers = {"X-Request-ID": stream_id}
    tag = format_tag(stream_id, query)
    max_tokens = int(own.get("tokens", MAX_TOKENS))
    if settings.request is not None and settings.request.path is not None:
        return _custom_request(stream_id, settings, query, headers, tag, max_tokens)
    base = settings.target.base_path
    if settings.api == "chunked":
        path = f"{base}/v1/stream?{urlencode([('user', stream_id), *query])}"
        return StreamRequest("GET", path, headers, b"")
    route, body = _ai_body(settings.api, settings.model, f"{PROMPT} {tag}", stream_id, max_tokens)
    headers |= {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if settings.api == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    payload = json.dumps(body, separators=(",", ":")).encode()
    return StreamRequest("POST", f"{base}{route}" + (f"?{urlencode(query)}" if query else ""), headers, payload)


def _ai_body(api: str, model: str, prompt: str, stream_id: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    """(route, body) of an AI API's streaming request (``sse`` sends the chat completions one)."""
    if api == "openai-responses":
        return "/v1/responses", {"model": model, "input": prompt, "stream": True, "user": stream_id}
    messages = [{"role": "user", "content": prompt}]
    if api == "anthropic":
        return "/v1/messages", {
            "model": model,
            "max_tokens": max_tokens,
            "messages": messages,
            "stream": True,
            "metadata": {"user_id": stream_id},
        }
    return "/v1/chat/completions", {"model": model, "messages": messages, "stream": True, "user": stream_id}


def _custom_request(
    stream_id: str,
    settings: StreamSettings,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    tag: str,
    max_tokens: int,
) -> StreamRequest:
    """The target's own method, path and body template (--request, --request-body), placeholders filled in."""
    request = settings.request
    assert request is not None
    method, path, body = request.render(stream_id=stream_id, max_tokens=max_tokens, tag=tag)
    if body:
        headers["Content-Type"] = "application/json"
    if settings.api != "chunked":
        headers["Accept"] = "text/event-stream"
    if settings.api == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    if query:
        path += ("&" if "?" in path else "?") + urlencode(query)
    return StreamRequest(method, settings.target.base_path + path, headers, body)
