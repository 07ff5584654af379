"""Which id a stream gets, and by which channel it arrived: the prompt tag, ``X-Request-ID``, the body's user
field, the query's ``user``, or none (the upstream makes one up and says so)."""

from __future__ import annotations

import uuid

from aiohttp import web

__all__ = ["CHANNELS", "stream_identity"]

CHANNELS = ("prompt", "header", "user", "query", "none")
"""In the order they are taken: the first that arrives names the stream."""

STREAM_ID_HEADER = "X-Request-ID"


def stream_identity(request: web.Request, *, tag_id: str | None = None, body_user: object = None) -> tuple[str, str]:
    """(stream id, channel) of ``request``."""
    if tag_id:
        return tag_id, "prompt"
    header = request.headers.get(STREAM_ID_HEADER, "").strip()
    if header:
        return header, "header"
    if isinstance(body_user, str) and body_user.strip():
        return body_user.strip(), "user"
    query = request.query.get("user", "").strip()
    if query:
        return query, "query"
    return f"anon-{uuid.uuid4().hex[:16]}", "none"
