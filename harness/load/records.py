"""One stream as the client saw it (:class:`ClientRecord`, a clients.csv row) and :data:`stream_ended`, the event
that hands records to the plugin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from locust.event import EventHook

__all__ = ["ClientRecord", "record_rows", "stream_ended"]

stream_ended = EventHook()  # type: ignore[no-untyped-call]
"""Fired with ``record=ClientRecord`` in the user's greenlet when a stream ends, however it ends."""


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """One stream as the client saw it; times are epoch seconds (see runfolder.CLIENT_COLUMNS)."""

    stream_id: str
    target: str
    behaviour: str
    worker: str
    start: float
    first_byte: float | None
    first_token: float | None
    end: float
    outcome: str
    """completed | left | truncated (ended without the API's terminator) | broken | http_error | connect_error"""
    leave_how: str
    leave_when: str
    """before_headers | after_tokens | after_seconds | user_stopped (Locust stopped the user mid-stream) | ''"""
    status: int
    tokens: int
    bytes_read: int
    error: str
    max_token_gap: float | None = None
    """Seconds: the longest gap between two reads that brought tokens (None below two tokens)."""
    upstream_id: str = ""
    """The fake upstream's own stream id, read back from the response (harness.load.echo); "" when none came."""

    def row(self) -> dict[str, Any]:
        """The clients.csv row."""
        return {
            "stream_id": self.stream_id,
            "target": self.target,
            "behaviour": self.behaviour,
            "worker": self.worker,
            "start": self.start,
            "first_byte": self.first_byte,
            "first_token": self.first_token,
            "end": self.end,
            "outcome": self.outcome,
            "leave_how": self.leave_how,
            "leave_when": self.leave_when,
            "status": self.status,
            "tokens": self.tokens,
            "bytes": self.bytes_read,
            "error": self.error,
            "max_token_gap": self.max_token_gap,
            "upstream_id": self.upstream_id,
        }


def record_rows(records: list[ClientRecord]) -> list[Mapping[str, Any]]:
    """Rows for clients.csv (and for the message that carries them from a worker to the master)."""
    return [record.row() for record in records]
