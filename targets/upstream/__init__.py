"""The instrument: a fake AI model service that streams tokens and counts what it produced and for whom.

Routes:
    POST /v1/chat/completions   OpenAI-compatible; ``"stream": true`` gives Server-Sent Events
                                (``data: {chat.completion.chunk}`` ... ``data: [DONE]``), false one JSON completion
    GET  /v1/stream             the same tokens as a plain chunked byte stream
    GET  /__harness/stats       open streams, streams started, tokens produced, streams ended by reason
    GET  /__harness/streams     one record per stream (times in epoch seconds)

Modules: ``settings`` (stream settings, limits, flags), ``state`` (the books), ``producer`` (pacing and writing,
shared by every API), ``chat`` and ``plain`` (one per API), ``app`` (routes and the command line).

Per-request overrides: ``max_tokens`` in the body, and the query parameters ``tokens``, ``token_bytes``,
``rate`` (tokens per second, 0 = as fast as the reader takes them), ``header_delay`` and ``first_token_delay``
(seconds).
"""

from targets.upstream.app import create_app, main
from targets.upstream.producer import token_text
from targets.upstream.settings import LIMITS, StreamSettings
from targets.upstream.state import UpstreamState

__all__ = ["LIMITS", "StreamSettings", "UpstreamState", "create_app", "main", "token_text"]
