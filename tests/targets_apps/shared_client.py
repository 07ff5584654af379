"""What the real-server test apps share: the one upstream URL they call and the keep-alive client they call it with.

Written the way such servers are written: the upstream URL is fixed when the process starts (here from
``$STREAM_HARNESS_UPSTREAM_URL``, which the harness sets for every launched target), and one ``httpx.AsyncClient``
with its default keep-alive pool (20 idle connections) serves every request.
"""

from __future__ import annotations

import os

import httpx

UPSTREAM_URL = os.environ.get("STREAM_HARNESS_UPSTREAM_URL", "http://127.0.0.1:8001").rstrip("/")
CHAT_URL = f"{UPSTREAM_URL}/v1/chat/completions"
FIXED_BODY = {
    "model": "upstream-model",
    "stream": True,
    "messages": [{"role": "user", "content": "Tell me something."}],
}
"""The one request a proxy that forwards nothing sends for every client."""

CLIENT = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=5.0))
"""Shared by every request, as in most proxies: pooled connections stay open (ESTABLISHED) between streams."""
