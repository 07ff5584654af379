"""The lazy relay: each upstream chunk is pulled only after the previous write to the client completed.

The response pulls an async generator pipeline (the ``pull()`` handler of a ReadableStream, in Python): the
upstream is read one chunk per completed client write, so a slow client slows the upstream down through TCP;
and when the client leaves, the handler is cancelled (aiohttp's ``handler_cancellation``) or its write fails,
and leaving the ``async with`` blocks closes the generator and the upstream connection at once, also while
waiting for a silent upstream's headers or first token.
"""

from __future__ import annotations

from contextlib import aclosing

from aiohttp import web

from targets.relay import open_upstream, relay_main, start_client_response

__all__ = ["main", "relay"]


async def relay(request: web.Request, body: bytes) -> web.StreamResponse:
    async with await open_upstream(request, body) as upstream:
        response, writer = await start_client_response(request, upstream)
        # upstream.chunks() is an async generator: each iteration reads one chunk, nothing is read ahead
        async with aclosing(upstream.chunks()) as chunks:
            async for chunk in chunks:
                await response.write(chunk)
                # write() drains only every 64 KiB; wait for the socket so the next pull waits for the client.
                await writer.drain()
        await response.write_eof()
        return response


def main(argv: list[str] | None = None) -> int:
    return relay_main("lazy", relay, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
