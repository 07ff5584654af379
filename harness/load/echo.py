"""The upstream's own stream id, read back from the response: the one channel that needs nothing forwarded.

When no stream id reaches the fake upstream (a proxy to a fixed URL with a fixed body), the upstream makes one up,
``anon-`` and 16 hex digits (targets/upstream/identity.py; keep the two in step), and every AI API it speaks puts
that id in the stream's first event (``chatcmpl-anon-...``, ``resp_anon-...``, ``msg_anon-...``). A server that
passes the upstream's bytes on, as proxies do, hands it to the client, which records it (clients.csv
``upstream_id``): the analysis then pairs the two streams exactly (basis ``id:response``).

The client looks only at the first bytes of the body it read and, for a client that read little or nothing (a
stalled reader), at the first bytes still waiting in its socket (peeked, not consumed: the back-pressure it exerts
is unchanged), once, when the stream ends.
"""

from __future__ import annotations

import re

__all__ = ["PREFIX_BYTES", "UPSTREAM_ID", "echoed_id"]

UPSTREAM_ID = re.compile(rb"anon-[0-9a-f]{16}")
PREFIX_BYTES = 4096
"""How much of the start of a body is kept to look in (the first event is a few hundred bytes)."""


def echoed_id(data: bytes) -> str:
    """The first upstream-made stream id in ``data``, or ""."""
    found = UPSTREAM_ID.search(data)
    return found.group().decode("ascii") if found else ""
