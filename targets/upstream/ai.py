"""What the AI APIs share: the request as the upstream needs it, and one flow from body to stream.

Each API module (``chat``, ``responses``, ``messages``) parses its own body shape into an :class:`AiRequest`,
frames the stream and the whole answer, and words its own errors; this module reads the body, finds the prompt
tag, settles the stream's settings and id, and streams or answers.

Settings: the upstream's defaults, then the query string, then the tag (a stream's own settings win); the body's
token limit (``max_tokens`` and kin) then caps the length, as a real model stops at it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from targets.common import read_body
from targets.upstream.identity import stream_identity
from targets.upstream.producer import Encoder, answer_whole, stream_tokens
from targets.upstream.settings import LIMITS, BadField, StreamSettings, whole
from targets.upstream.state import STATE
from targets.upstream.tag import find_tag

__all__ = ["AiApi", "AiRequest", "ai_route", "message_texts", "openai_error", "optional_limit", "request_basics"]


@dataclass(frozen=True, slots=True)
class AiRequest:
    """What the upstream needs of one AI request."""

    model: str
    stream: bool
    texts: tuple[str, ...]
    """The prompt's texts, the last user message's first (where the tag is looked for, in this order)."""
    max_tokens: int | None
    user: object = None
    """The body's user field (``user``, or Anthropic's ``metadata.user_id``), one of the id channels."""
    include_usage: bool = False

    @property
    def prompt_tokens(self) -> int:
        """A stand-in for the prompt's token count: its words."""
        return sum(len(text.split()) for text in self.texts)


class AiApi(Protocol):
    """One AI API's body shape, framing and error format."""

    name: str

    def parse(self, body: dict[str, Any]) -> AiRequest: ...

    def encoder(self, request: AiRequest, stream_id: str, settings: StreamSettings, capped: bool) -> Encoder: ...

    def answer(self, request: AiRequest, stream_id: str, capped: bool) -> Callable[[str, int], dict[str, Any]]: ...

    def error(self, error: BadField) -> dict[str, Any]: ...


def ai_route(api: AiApi) -> Callable[[web.Request], Any]:
    """The aiohttp handler of ``api``'s route."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        try:
            data = await read_body(request)  # 408 when it does not arrive in time
            try:
                body = json.loads(data)
            except (ValueError, RecursionError) as error:
                reason = "is nested too deeply" if isinstance(error, RecursionError) else "is not valid JSON"
                raise BadField("body", f"request body must be a JSON object, but it {reason}") from None
            if not isinstance(body, dict):
                raise BadField("body", f"request body must be a JSON object, got {type(body).__name__}")
            parsed = api.parse(body)
            natural = state.defaults.overridden(request.query)
        except BadField as error:
            raise web.HTTPBadRequest(text=json.dumps(api.error(error)), content_type="application/json") from None
        found = find_tag(parsed.texts)
        if found.unparseable:
            state.tags_unparseable += 1
        if found.tag is not None:
            natural = natural.overridden(found.tag.settings)
        settings = natural.capped(parsed.max_tokens)
        capped = settings.tokens < natural.tokens
        identity = stream_identity(request, tag_id=found.tag.stream_id if found.tag else None, body_user=parsed.user)
        if parsed.stream:
            encoder = api.encoder(parsed, identity[0], settings, capped)
            return await stream_tokens(request, settings, identity, api.name, encoder)
        return await answer_whole(request, settings, identity, api.name, api.answer(parsed, identity[0], capped))

    return handle


def openai_error(error: BadField) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": error.message, "type": "invalid_request_error", "param": error.field, "code": None}}


def request_basics(body: dict[str, Any], default_model: str = "stream-harness-fake") -> tuple[str, bool]:
    """(model, stream) of a body; BadField for a stream flag that is not a boolean or a model that is no string."""
    model = body.get("model", default_model)
    if not isinstance(model, str):
        raise BadField("model", f"model must be a string, got {model!r}")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadField("stream", f"stream must be true or false, got {stream!r}")
    return model, stream


def optional_limit(body: dict[str, Any], *names: str) -> int | None:
    """The first of the token-limit fields ``names`` the body gives (checked), else None."""
    for name in names:
        if body.get(name) is not None:
            return whole(name, body[name], LIMITS["tokens"])
    return None


def message_texts(messages: object, *, field: str, text_types: Sequence[str]) -> tuple[str, ...]:
    """The texts of a chat-shaped message list, the last user message's first; BadField names a bad part."""
    if not isinstance(messages, list) or not messages:
        raise BadField(field, f"{field} must be a non-empty array of messages, got {_shown(messages)}")
    texts: list[tuple[bool, str]] = []
    for index, message in enumerate(messages):
        where = f"{field}[{index}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadField(where, f"{where} must be an object with a role, got {_shown(message)}")
        user = message["role"] == "user"
        content = message.get("content")
        if isinstance(content, str):
            texts.append((user, content))
        elif isinstance(content, list):
            for part_index, part in enumerate(content):
                if not isinstance(part, dict):
                    raise BadField(f"{where}.content[{part_index}]", f"{where}.content[{part_index}] must be an object")
                if part.get("type") in text_types and isinstance(part.get("text"), str):
                    texts.append((user, part["text"]))
        elif content is not None:
            raise BadField(f"{where}.content", f"{where}.content must be a string or an array of parts")
    users = [text for user, text in texts if user]
    others = [text for user, text in texts if not user]
    return (*reversed(users), *others)


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
