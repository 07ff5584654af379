"""What one stream reports to Locust's statistics: exactly one request entry (contract 7).

    ``<target> stream``  request type ``SSE`` or ``STREAM``; response time = the whole stream's duration, response
                         length = bytes read; a failure if it broke, was truncated or got an HTTP error; a stream the
                         client left on purpose (a wave's leave, or Locust stopping the user) is a success

So Locust's requests/s is streams/s, its failures are failed streams, and its Aggregated row never mixes unlike
measures. Time to first byte, to first token and the gaps between tokens are per-stream figures of the client
records (clients.csv): summary.json gives their percentiles per target, and the web UI's "Stream timings" tab
shows them live (harness.plugin.web_ui).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["StreamStats"]


class StreamStats:
    """Fires one stream's single entry into Locust's ``events.request``."""

    __slots__ = ("_context", "_fire", "_fired", "_name", "_request_type")

    def __init__(self, fire: Callable[..., Any], *, target: str, stream_id: str, event_stream: bool) -> None:
        self._fire = fire
        self._name = f"{target} stream"
        self._request_type = "SSE" if event_stream else "STREAM"
        self._context = {"stream_id": stream_id}
        self._fired = False

    def _entry(self, seconds: float, length: int, error: BaseException | None) -> None:
        if self._fired:  # one entry per stream, whatever path ends it
            return
        self._fired = True
        self._fire(
            request_type=self._request_type,
            name=self._name,
            response_time=seconds * 1000.0,
            response_length=length,
            exception=error,
            context=self._context,
        )

    def ended(self, seconds: float, bytes_read: int, error: BaseException | None = None) -> None:
        """The stream ended by itself (completed, or failed with ``error``)."""
        self._entry(seconds, bytes_read, error)

    def left(self, seconds: float, bytes_read: int) -> None:
        """The client left the stream on purpose (never a failure)."""
        self._entry(seconds, bytes_read, None)
