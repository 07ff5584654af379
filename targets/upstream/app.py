"""The upstream application: its routes, its books' routes, and the command line that serves it."""

from __future__ import annotations

import argparse
import dataclasses
import os

from aiohttp import web

from targets.common import SocketTuning, add_server_arguments, new_app, run_server
from targets.upstream.ai import ai_route
from targets.upstream.chat import CHAT
from targets.upstream.control import CONTROL_TOKEN_ENV, get_defaults, put_defaults
from targets.upstream.messages import MESSAGES
from targets.upstream.plain import plain_stream
from targets.upstream.responses import RESPONSES
from targets.upstream.settings import StreamSettings, add_stream_arguments, settings_from_args
from targets.upstream.state import STATE, UpstreamState

__all__ = ["create_app", "main"]


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats())


async def streams(request: web.Request) -> web.Response:
    return web.json_response([dataclasses.asdict(record) for record in request.app[STATE].records])


async def _mark_stopping(app: web.Application) -> None:
    app[STATE].stopping = True


def create_app(defaults: StreamSettings, tuning: SocketTuning, control_token: str = "") -> web.Application:
    """The upstream application with ``defaults`` for requests that do not override them; ``control_token``
    guards PUT /__harness/defaults (empty = refuse every call)."""
    app = new_app()
    app[STATE] = UpstreamState(defaults=defaults, tuning=tuning, control_token=control_token)
    app.on_shutdown.append(_mark_stopping)
    app.router.add_post("/v1/chat/completions", ai_route(CHAT))
    app.router.add_post("/v1/responses", ai_route(RESPONSES))
    app.router.add_post("/v1/messages", ai_route(MESSAGES))
    app.router.add_get("/v1/stream", plain_stream)
    app.router.add_put("/__harness/defaults", put_defaults)
    app.router.add_get("/__harness/defaults", get_defaults)
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
    token = os.environ.get(CONTROL_TOKEN_ENV, "")
    app = create_app(settings_from_args(args), SocketTuning.from_args(args), token)
    return run_server(app, args, "upstream")
