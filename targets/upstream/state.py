"""The upstream's books: one record per stream, and the counters /__harness/stats reports."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from targets.common import SocketTuning
from targets.upstream.settings import StreamSettings

__all__ = ["STATE", "StreamRecord", "UpstreamState"]


@dataclass(slots=True)
class StreamRecord:
    """One stream as the upstream saw it; times are epoch seconds."""

    id: str
    route: str
    start: float
    api: str = "chunked"
    """openai-chat | openai-responses | anthropic | chunked"""
    id_channel: str = "none"
    """How the id arrived: prompt | header | user | query | none (the upstream made one up)."""
    first_token: float | None = None
    end: float | None = None
    tokens_sent: int = 0
    bytes_sent: int = 0
    end_reason: str | None = None
    """completed | peer_closed | server_stopped; None while open."""


@dataclass(slots=True)
class UpstreamState:
    """Counters and per-stream records; the ground truth the harness checks relays against."""

    defaults: StreamSettings
    """What a request that names no setting gets: the flags', or what the control route last set."""
    tuning: SocketTuning
    control_token: str = ""
    """The bearer token of PUT /__harness/defaults; empty = the control route refuses every call."""
    launch_defaults: StreamSettings | None = None
    """The flags' settings, which the control route's values apply to (None = ``defaults`` at start)."""
    tags_unparseable: int = 0
    model: str = "stream-harness-fake"
    records: list[StreamRecord] = field(default_factory=list)
    open_streams: int = 0
    tokens_produced: int = 0
    bytes_produced: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    stopping: bool = False

    def __post_init__(self) -> None:
        if self.launch_defaults is None:
            self.launch_defaults = self.defaults

    def open(self, stream_id: str, route: str, api: str = "chunked", id_channel: str = "none") -> StreamRecord:
        record = StreamRecord(id=stream_id, route=route, start=time.time(), api=api, id_channel=id_channel)
        self.records.append(record)
        self.open_streams += 1
        return record

    def produced(self, record: StreamRecord, nbytes: int) -> None:
        if record.tokens_sent == 0:
            record.first_token = time.time()
        record.tokens_sent += 1
        record.bytes_sent += nbytes
        self.tokens_produced += 1
        self.bytes_produced += nbytes

    def close(self, record: StreamRecord, reason: str) -> None:
        if record.end_reason is not None:
            return
        record.end = time.time()
        record.end_reason = "server_stopped" if self.stopping and reason == "peer_closed" else reason
        self.open_streams -= 1
        self.ended[record.end_reason] += 1

    def stats(self) -> dict[str, Any]:
        return {
            "open_streams": self.open_streams,
            "streams_started": len(self.records),
            "tokens_produced": self.tokens_produced,
            "bytes_produced": self.bytes_produced,
            "ended": {reason: self.ended.get(reason, 0) for reason in ("completed", "peer_closed")} | dict(self.ended),
            "tags_unparseable": self.tags_unparseable,
            "asyncio_tasks": len(asyncio.all_tasks()),
            "time": time.time(),
        }


STATE = web.AppKey("state", UpstreamState)
