"""The upstream application: its routes, its books' routes, and the command line that serves it."""

from __future__ import annotations

import argparse
import dataclasses

from aiohttp import web

from targets.common import SocketTuning, add_server_arguments, new_app, run_server
from targets.upstream.chat import chat_completions
from targets.upstream.plain import plain_stream
from targets.upstream.settings import StreamSettings, add_stream_arguments, settings_from_args
from targets.upstream.state import STATE, UpstreamState

__all__ = ["create_app", "main"]


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats())


async def streams(request: web.Request) -> web.Response:
    return web.json_response([dataclasses.asdict(record) for record in request.app[STATE].records])


async def _mark_stopping(app: web.Application) -> None:
    app[STATE].stopping = True


def create_app(defaults: StreamSettings, tuning: SocketTuning) -> web.Application:
    """The upstream application with ``defaults`` for requests that do not override them."""
    app = new_app()
    app[STATE] = UpstreamState(defaults=defaults, tuning=tuning)
    app.on_shutdown.append(_mark_stopping)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/stream", plain_stream)
    app.router.add_get("/__harness/stats", stats)
    app.router.add_get("/__harness/streams", streams)
    return app


def main(argv: list[str] | None = None) -> int:
    import targets.upstream

    doc = targets.upstream.__doc__ or "upstream"
    parser = argparse.ArgumentParser(prog="python -m targets.upstream", description=doc.splitlines()[0])
    add_server_arguments(parser)
    add_stream_arguments(parser)
    args = parser.parse_args(argv)
    app = create_app(settings_from_args(args), SocketTuning.from_args(args))
    return run_server(app, args, "upstream")
