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
    tuning: SocketTuning
    model: str = "stream-harness-fake"
    records: list[StreamRecord] = field(default_factory=list)
    open_streams: int = 0
    tokens_produced: int = 0
    bytes_produced: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    stopping: bool = False

    def open(self, stream_id: str, route: str) -> StreamRecord:
        record = StreamRecord(id=stream_id, route=route, start=time.time())
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
            "asyncio_tasks": len(asyncio.all_tasks()),
            "time": time.time(),
        }


STATE = web.AppKey("state", UpstreamState)
