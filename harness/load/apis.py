"""The streaming APIs a client can speak to a target, by name (the ``--stream-api`` and ``--request-api`` values).

    openai-chat        POST /v1/chat/completions, ``chat.completion.chunk`` events, ends with ``data: [DONE]``
    openai-responses   POST /v1/responses, typed events, ends with ``response.completed`` (or incomplete, failed)
    anthropic          POST /v1/messages, named events, ends with ``message_stop``
    sse                any event stream (the chat completions request): every ``data:`` event a token, ends at EOF
    chunked            GET /v1/stream: every HTTP chunk a token, ends with the last chunk

For the three AI APIs only content deltas are tokens: a role-only chunk, an empty delta, ``ping``, ``*.created`` and
the other control events are not, so the time to the first token is the time to the first generated content.
"""

from __future__ import annotations

from typing import Literal, get_args

from harness.errors import UsageError

__all__ = ["AI_APIS", "API_NAMES", "DEFAULT_API", "TERMINATORS", "Api", "parse_api"]

Api = Literal["openai-chat", "openai-responses", "anthropic", "sse", "chunked"]
API_NAMES: tuple[Api, ...] = get_args(Api)
AI_APIS: tuple[Api, ...] = ("openai-chat", "openai-responses", "anthropic")
DEFAULT_API: Api = "openai-chat"
TERMINATORS: dict[Api, str] = {
    "openai-chat": "data: [DONE]",
    "openai-responses": "response.completed",
    "anthropic": "message_stop",
    "sse": "the end of the body",
    "chunked": "the last chunk",
}
"""What ends a stream of each API; a body that ends cleanly without it is ``truncated``."""


def parse_api(text: str, *, what: str = "--stream-api") -> Api:
    """An API name; UsageError naming the value and the names there are."""
    for name in API_NAMES:
        if text == name:
            return name
    raise UsageError(f"{what} must be one of {', '.join(API_NAMES)}, but got {text!r}")
