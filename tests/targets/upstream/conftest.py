"""The fake upstream app under aiohttp's test client, with small fast defaults."""

from __future__ import annotations

from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient

from targets.common import SocketTuning
from targets.upstream import StreamSettings, create_app

DEFAULTS = StreamSettings(tokens=5, token_bytes=8, rate=0.0, header_delay_s=0.0, first_token_delay_s=0.0)
CONTROL_TOKEN = "test-token"


@pytest_asyncio.fixture
async def client(aiohttp_client: Any) -> TestClient[Any, Any]:
    result: TestClient[Any, Any] = await aiohttp_client(
        create_app(DEFAULTS, SocketTuning(4096, 4096), control_token=CONTROL_TOKEN)
    )
    return result


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event type or None, data) of a well-formed SSE body, checking the framing on the way."""
    assert text.endswith("\n\n")
    events: list[tuple[str | None, str]] = []
    for block in text[:-2].split("\n\n"):
        kind, data = None, None
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name == "event":
                kind = value
            else:
                assert name == "data", block
                data = value
        assert data is not None, block
        events.append((kind, data))
    return events
