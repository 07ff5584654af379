"""The HTTP request that opens one stream: the API's default request, or the target's own template
(``--request``, ``--request-body``), carrying the stream id and the upstream settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

from harness.load.behaviour import Behaviour
from harness.load.stream_settings import StreamSettings

__all__ = ["StreamRequest", "build_request"]


@dataclass(frozen=True, slots=True)
class StreamRequest:
    method: str
    path: str
    """Path and query string."""
    headers: dict[str, str]
    body: bytes


def build_request(stream_id: str, behaviour: Behaviour, settings: StreamSettings) -> StreamRequest:
    """The request of stream ``stream_id``: the id goes in ``X-Request-ID``, the body's ``user`` (``sse``) or
    ``?user=`` (``chunked``); upstream settings in the query string (the behaviour's override the flags')."""
    query = list((dict(settings.upstream) | dict(behaviour.upstream)).items())
    headers = {"X-Request-ID": stream_id}
    if settings.request is not None and settings.request.path is not None:
        return _custom_request(stream_id, settings, query, headers)
    base = settings.target.base_path
    if settings.api == "sse":
        path = f"{base}/v1/chat/completions"
        body = {
            "model": settings.model,
            "messages": [{"role": "user", "content": "stream-harness"}],
            "stream": True,
            "user": stream_id,
        }
        headers |= {"Content-Type": "application/json", "Accept": "text/event-stream"}
        payload = json.dumps(body, separators=(",", ":")).encode()
        method = "POST"
    else:
        path = f"{base}/v1/stream"
        query.insert(0, ("user", stream_id))
        payload = b""
        method = "GET"
    return StreamRequest(method, path + (f"?{urlencode(query)}" if query else ""), headers, payload)


def _custom_request(
    stream_id: str, settings: StreamSettings, query: list[tuple[str, str]], headers: dict[str, str]
) -> StreamRequest:
    """The target's own method, path and body template (--request, --request-body), placeholders filled in."""
    request = settings.request
    assert request is not None
    max_tokens = int(dict(query).get("tokens", settings.max_tokens))
    method, path, body = request.render(stream_id=stream_id, max_tokens=max_tokens)
    if body:
        headers["Content-Type"] = "application/json"
    if settings.api == "sse":
        headers["Accept"] = "text/event-stream"
    if query:
        path += ("&" if "?" in path else "?") + urlencode(query)
    return StreamRequest(method, settings.target.base_path + path, headers, body)
