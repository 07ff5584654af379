"""Everything one stream needs besides its behaviour (:class:`StreamSettings`), and where it comes from: Locust's
parsed options (the plugin's flags), read once when a user starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from harness.errors import UsageError
from harness.launch.targets_spec import RequestSpec, parse_requests
from harness.load.apis import Api, parse_api
from harness.load.pacing import Pace
from harness.load.targets import Target, parse_targets

__all__ = ["DEFAULT_READ_PACE", "MIN_RCVBUF_BYTES", "StreamSettings", "settings_from_options", "target_request"]

MIN_RCVBUF_BYTES = 1152
"""Linux doubles SO_RCVBUF and raises anything under SOCK_MIN_RCVBUF (2304 bytes) to it: 1152 is the least that
means what it says. 0 leaves the kernel's autotuning."""

DEFAULT_READ_PACE = "1KiB/s"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Everything one stream needs besides its behaviour, read from Locust's options when a user starts."""

    target: Target
    pace: Pace
    """The pace of paced readers whose behaviour names none (the ``--read-pace`` flag)."""
    rcvbuf_bytes: int
    api: Api
    worker: str
    model: str = "stream-harness"
    upstream: tuple[tuple[str, str], ...] = ()
    """Upstream settings sent in every request's query string (the behaviour's own override them)."""
    request: RequestSpec | None = None
    """The target's own request (--request, --request-body), when it does not speak the API's default one."""


def settings_from_options(environment: Any) -> tuple[tuple[Target, ...], Pace, int, Api, tuple[tuple[str, str], ...]]:
    """Targets, default pace, receive buffer, API and upstream query from Locust's parsed options (the plugin's
    flags), else defaults."""
    options = environment.parsed_options
    text = getattr(options, "harness_targets", None) or getattr(options, "target_url", None)
    if text:
        targets = parse_targets(str(text))
    elif environment.host:
        targets = (Target("host", str(environment.host)),)
    else:
        raise UsageError("no target to stream from: give --target-url NAME=URL, --host URL, or load the plugin")
    pace = Pace.parse(str(getattr(options, "read_pace", None) or DEFAULT_READ_PACE), what="--read-pace")
    rcvbuf = int(getattr(options, "client_rcvbuf", 4096))
    api = parse_api(str(getattr(options, "stream_api", None) or "openai-chat"))
    upstream = tuple(parse_qsl(str(getattr(options, "harness_upstream_query", "") or "")))
    return targets, pace, rcvbuf, api, upstream


def target_request(environment: Any, target: str) -> RequestSpec | None:
    """The request the plugin's --request flags give ``target`` (None = the API's default)."""
    options = environment.parsed_options
    requests = parse_requests(str(getattr(options, "harness_requests", "") or ""))
    return requests.get(target)
