"""The bundled lazy relay made deliberately slower: it waits DELAY seconds before opening each upstream stream.

    python -m tests.report.slow_relay DELAY --host H --port P --upstream URL

Used by the comparison test as a ``--launch`` target: the same relay at DELAY 0 and at a DELAY far beyond noise.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from targets.lazy import relay
from targets.relay import relay_main


def main(argv: list[str]) -> int:
    delay_s = float(argv[0])

    async def slower(request: web.Request, body: bytes) -> web.StreamResponse:
        await asyncio.sleep(delay_s)
        return await relay(request, body)

    return relay_main("lazy", slower, "the lazy relay, slower by DELAY seconds per stream", argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
