"""What one stream reports to Locust's statistics, per target (``request_type`` ``SSE`` or ``STREAM``).

    ``<target> ttfb``          request sent -> response headers
    ``<target> ttft``          request sent -> first token (SSE data event, or first chunk)
    ``<target> token gap``     one entry per stream: the mean gap between its tokens, (last - first) / (n - 1)
    ``<target> token gap max`` one entry per stream: its longest gap between two reads that brought tokens
    ``<target> stream``        the whole stream, response length = bytes read; a failure if broken or truncated
    ``<target> left``          a stream the client left on purpose (never a failure)

One stats entry per token would cost more than the stream itself at thousands of streams (Locust's stats are a
dict update per call); the two per-stream gap entries cost O(1) per token and keep stalls visible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["StreamStats"]


class StreamStats:
    """Fires one stream's entries into Locust's ``events.request``."""

    __slots__ = ("_context", "_fire", "_prefix", "_request_type")

    def __init__(self, fire: Callable[..., Any], *, target: str, stream_id: str, event_stream: bool) -> None:
        self._fire = fire
        self._prefix = f"{target} "
        self._request_type = "SSE" if event_stream else "STREAM"
        self._context = {"stream_id": stream_id}

    def _entry(self, what: str, seconds: float, length: int = 0, error: BaseException | None = None) -> None:
        self._fire(
            request_type=self._request_type,
            name=self._prefix + what,
            response_time=seconds * 1000.0,
            response_length=length,
            exception=error,
            context=self._context,
        )

    def ttfb(self, seconds: float) -> None:
        """The response headers arrived ``seconds`` after the request was sent."""
        self._entry("ttfb", seconds)

    def ttft(self, seconds: float) -> None:
        """The first token arrived ``seconds`` after the request was sent."""
        self._entry("ttft", seconds)

    def token_gaps(self, mean_s: float, max_s: float) -> None:
        """A stream with two tokens or more ended: its mean and longest gap between tokens."""
        self._entry("token gap", mean_s)
        self._entry("token gap max", max_s)

    def ended(self, seconds: float, bytes_read: int, error: BaseException | None = None) -> None:
        """The stream ended by itself (completed, or failed with ``error``)."""
        self._entry("stream", seconds, bytes_read, error)

    def left(self, seconds: float, bytes_read: int) -> None:
        """The client left the stream on purpose."""
        self._entry("left", seconds, bytes_read)
