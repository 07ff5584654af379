"""The instrument: a fake AI model service that streams tokens and counts what it produced and for whom.

Routes (each AI API on its real route, streaming with ``"stream": true``, else one JSON answer):
    POST /v1/chat/completions   OpenAI Chat Completions (``chat``)
    POST /v1/responses          OpenAI Responses (``responses``)
    POST /v1/messages           Anthropic Messages (``messages``)
    GET  /v1/stream             the same tokens as a plain chunked byte stream (``plain``)
    GET  /__harness/stats       open streams, streams started, tokens produced, streams ended by reason
    GET  /__harness/streams     one record per stream (times in epoch seconds), with its ``api`` and ``id_channel``
    PUT  /__harness/defaults    the harness's control route (``control``)

Modules: ``settings`` (stream settings, limits, flags), ``tag`` (the prompt tag), ``identity`` (stream ids and their
channels), ``state`` (the books), ``producer`` (pacing and writing, shared by every API), ``ai`` (the AI APIs'
shared request flow), ``chat``, ``responses``, ``messages``, ``plain`` (one per API), ``control``, ``app``.

Per-request settings, by the names ``tokens``, ``token_bytes``, ``rate`` (tokens per second, 0 = as fast as the
reader takes them), ``header_delay`` and ``first_token_delay`` (seconds): in the query string, and in the prompt
tag, which wins. A body's token limit (``max_tokens`` and kin) caps the length.
"""

from targets.upstream.app import create_app, main
from targets.upstream.producer import token_text
from targets.upstream.settings import LIMITS, StreamSettings
from targets.upstream.state import UpstreamState

__all__ = ["LIMITS", "StreamSettings", "UpstreamState", "create_app", "main", "token_text"]
