"""The control route: the harness sets the upstream's defaults at each phase start.

    PUT /__harness/defaults   Authorization: Bearer <token>; a JSON object of settings by the query's names
                              (tokens, token_bytes, rate, header_delay, first_token_delay), applied to the flags'
                              settings (so ``{}`` restores them); answers the new defaults
    GET /__harness/defaults   the defaults now in force

Only loopback peers with the token the upstream was started with (env ``STREAM_HARNESS_CONTROL_TOKEN``) may set
them; anything else is answered 403 and logged. Streams already running keep the settings they started with.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web

from targets.common import bad_request, json_body
from targets.upstream.settings import KEYS, BadField
from targets.upstream.state import STATE

__all__ = ["CONTROL_TOKEN_ENV", "get_defaults", "put_defaults"]

CONTROL_TOKEN_ENV = "STREAM_HARNESS_CONTROL_TOKEN"
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")

log = logging.getLogger("targets")


def _forbidden(request: web.Request, why: str) -> web.HTTPForbidden:
    log.warning("PUT /__harness/defaults from %s refused: %s", request.remote, why)
    body = json.dumps({"error": {"message": f"control route refused: {why}", "type": "permission_error"}})
    return web.HTTPForbidden(text=body, content_type="application/json")


async def put_defaults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.remote not in LOOPBACK:
        raise _forbidden(request, f"peer {request.remote} is not loopback")
    if not state.control_token:
        raise _forbidden(request, f"no control token was given to this upstream (${CONTROL_TOKEN_ENV})")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {state.control_token}".encode()):
        raise _forbidden(request, "wrong or missing bearer token")
    values: Any = await json_body(request)  # 400 for bad or too deeply nested JSON, 408 for a body that never ends
    if not isinstance(values, dict):
        bad_request("the defaults must be a JSON object of settings")
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        bad_request(f"unknown setting {unknown[0]!r}; the settings are {', '.join(KEYS)}")
    assert state.launch_defaults is not None
    try:
        state.defaults = state.launch_defaults.overridden(values)
    except BadField as error:
        bad_request(error.message)
    log.info("defaults set to %s", state.defaults.values())
    return web.json_response(state.defaults.values())


async def get_defaults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].defaults.values())
