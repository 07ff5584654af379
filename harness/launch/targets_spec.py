"""The user's own servers as targets: the flags that name them, launching them, attaching to them, and the request
each one is sent.

    --launch 'NAME=COMMAND'          start COMMAND (shlex-split, no shell) with {port} (a free port the harness
                                     picks), {host} (127.0.0.1) and {upstream} (the URL of NAME's own fake upstream,
                                     also in $STREAM_HARNESS_UPSTREAM_URL); its port is also in $PORT and
                                     $STREAM_HARNESS_PORT
    --launch-ready NAME=PATH         ready once PATH answers 2xx (default: any HTTP answer on /)
    --launch-timeout DURATION        how long a launched target may take to become ready (default: 30s)
    --profile-launched N             trace launched Python commands with tracemalloc, N frames (0 = off: the probe
                                     only counts their asyncio tasks)
    --attach 'NAME=URL[,pid=PID][,upstream=PORT]'
                                     a server already running; with a PID its process tree is sampled from
                                     outside; with upstream=PORT the harness starts NAME's own fake upstream on
                                     127.0.0.1:PORT (point the server at it; it may start before the upstream does)
                                     and its books judge NAME's cancellation
    --request 'NAME=METHOD PATH'     what NAME is sent instead of POST /v1/chat/completions
    --request-body 'NAME=JSON'       its body template, or NAME=@file.json; {stream_id}, {max_tokens} and {tag} (the
                                     prompt tag, for the prompt text) are filled in
    --request-api NAME=API           how NAME's answer is read: openai-chat, openai-responses, anthropic, sse or
                                     chunked (default: --stream-api)

Every flag value is checked by Locust's parser (exit 2, naming the flag and the value); what spans flags (names
unique across targets, a request for a target nobody named) is checked by :meth:`UserTargets.from_options`
before anything is launched. Launching is in ``harness.launch.launched``.

--target-url servers get no fake upstream: the harness knows nothing of what they call, so no cancellation figure
is claimed for them (use --attach with upstream=PORT).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from harness.errors import UsageError
from harness.load.apis import Api, parse_api
from harness.units import parse_duration

__all__ = [
    "LAUNCH_HOST",
    "PORT_ENV",
    "UPSTREAM_ENV",
    "AttachTarget",
    "LaunchTarget",
    "RequestSpec",
    "UserTargets",
    "add_target_arguments",
    "parse_requests",
]

log = logging.getLogger("harness")

UPSTREAM_ENV = "STREAM_HARNESS_UPSTREAM_URL"
PORT_ENV = "STREAM_HARNESS_PORT"
LAUNCH_HOST = "127.0.0.1"
STOP_GRACE_S = 3.0
TAIL_LINES = 6
_PLACEHOLDER = re.compile(r"(?<!\$)\{(\w*)\}")
_LAUNCH_PLACEHOLDERS = ("port", "host", "upstream")
_BODY_PLACEHOLDERS = ("stream_id", "max_tokens", "tag")
_METHOD = re.compile(r"[A-Z]+")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


# -- values -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LaunchTarget:
    """A server the harness starts from the user's command line."""

    name: str
    command: str
    argv_template: tuple[str, ...]
    ready_path: str | None = None
    """Ready once this path answers 2xx; None = once ``/`` gives any HTTP answer."""

    @property
    def needs_upstream(self) -> bool:
        return "{upstream}" in self.command

    def argv(self, *, port: int, upstream_url: str) -> list[str]:
        """The command with its placeholders filled in."""
        values = {"port": str(port), "host": LAUNCH_HOST, "upstream": upstream_url}
        return [_PLACEHOLDER.sub(lambda match: values[match.group(1)], word) for word in self.argv_template]


@dataclass(frozen=True, slots=True)
class AttachTarget:
    """A server already running: loaded at ``url``, sampled from outside when ``pid`` is given."""

    name: str
    url: str
    pid: int | None = None
    upstream_port: int | None = None
    """Where the harness starts this target's own fake upstream (``upstream=PORT``); None = no upstream of ours."""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What one target is sent, when it is not OpenAI chat completions."""

    method: str = "POST"
    path: str | None = None
    """None = the API's own (POST /v1/chat/completions for sse, GET /v1/stream for chunked)."""
    body: str | None = None
    """Template with ``{stream_id}``, ``{max_tokens}`` and ``{tag}``; None = no body (or the API's own when path is
    None)."""
    api: Api | None = None
    """How the answer is read; None = the scenario's or ``--stream-api``."""

    def render(self, *, stream_id: str, max_tokens: int, tag: str = "") -> tuple[str, str, bytes]:
        """(method, path, body) with the placeholders filled in; the path's value is URL-quoted. The tag needs no
        JSON escaping (letters, digits, ``[]=._-`` and spaces), so ``"{tag}"`` may sit inside a JSON string."""
        values = {"stream_id": stream_id, "max_tokens": str(max_tokens), "tag": tag}
        path = _PLACEHOLDER.sub(lambda match: quote(values[match.group(1)], safe=""), self.path or "/")
        body = b""
        if self.body is not None:
            body = _PLACEHOLDER.sub(lambda match: values[match.group(1)], self.body).encode()
        return self.method, path, body

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "body": self.body, "api": self.api}


def format_requests(requests: Mapping[str, RequestSpec]) -> str:
    """Requests as one JSON text (how they travel to Locust workers, in the parsed options)."""
    return json.dumps({name: spec.to_dict() for name, spec in requests.items()}, sort_keys=True) if requests else ""


def parse_requests(text: str) -> dict[str, RequestSpec]:
    """The inverse of :func:`format_requests`."""
    if not text:
        return {}
    payload = json.loads(text)
    return {
        name: RequestSpec(
            method=str(item.get("method") or "POST"), path=item.get("path"), body=item.get("body"), api=item.get("api")
        )
        for name, item in payload.items()
    }


# -- one flag value at a time (argparse types: exit 2 naming the flag and the value) --------------------------------
def _split_name(text: str, *, what: str, expected: str) -> tuple[str, str]:
    name, equals, rest = text.partition("=")
    name = name.strip()
    if not equals or not rest.strip() or not _NAME.fullmatch(name):
        raise UsageError(f"{what} takes {expected} (NAME: letters, digits, '-', '_' or '.'), but got {text!r}")
    return name, rest.strip()


def _check_placeholders(text: str, known: Sequence[str], *, what: str, value: str) -> None:
    unknown = sorted({name for name in _PLACEHOLDER.findall(text) if name not in known})
    if unknown:
        listed = ", ".join("{" + name + "}" for name in known)
        raise UsageError(f"{what} knows the placeholders {listed}, but {value!r} has {{{unknown[0]}}}")


def parse_launch(text: str, *, what: str = "--launch") -> LaunchTarget:
    """``"mine=python -m uvicorn app:app --port {port}"`` -> LaunchTarget."""
    name, command = _split_name(text, what=what, expected="'NAME=COMMAND'")
    try:
        argv = tuple(shlex.split(command))
    except ValueError as error:
        raise UsageError(f"{what} command of {name!r} cannot be split into words ({error}): {text!r}") from None
    _check_placeholders(command, _LAUNCH_PLACEHOLDERS, what=what, value=text)
    return LaunchTarget(name, command, argv)


def _ready_path(text: str, *, what: str) -> tuple[str, str]:
    name, path = _split_name(text, what=what, expected="NAME=PATH")
    if not path.startswith("/"):
        raise UsageError(f"{what} takes NAME=PATH with PATH starting with '/', but got {text!r}")
    return name, path


def parse_attach(text: str, *, what: str = "--attach") -> AttachTarget:
    """``"mine=http://127.0.0.1:8080,pid=1234,upstream=9100"`` -> AttachTarget."""
    expected = "'NAME=http://HOST:PORT[,pid=PID][,upstream=PORT]'"
    name, rest = _split_name(text, what=what, expected=expected)
    url, *options = rest.split(",")
    parts = urlsplit(url.strip())
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"{what} takes {expected}, but got {text!r}")
    found: dict[str, int] = {}
    for option in options:
        key, equals, value = option.strip().partition("=")
        key = key.strip()
        number = int(value) if value.strip().isdigit() else 0
        top = 65535 if key == "upstream" else 2**31
        if key not in ("pid", "upstream") or key in found or not equals or not 1 <= number <= top:
            raise UsageError(
                f"{what} takes {expected} with PID a whole number >= 1 and PORT one from 1 to 65535, but got {text!r}"
            )
        found[key] = number
    return AttachTarget(name, url.strip().rstrip("/"), found.get("pid"), found.get("upstream"))


def _request_line(text: str, *, what: str) -> tuple[str, RequestSpec]:
    name, line = _split_name(text, what=what, expected="'NAME=METHOD PATH'")
    words = line.split()
    if len(words) != 2 or not _METHOD.fullmatch(words[0]) or not words[1].startswith("/"):
        raise UsageError(f"{what} takes 'NAME=METHOD PATH' (e.g. 'mine=POST /api/stream'), but got {text!r}")
    _check_placeholders(words[1], _BODY_PLACEHOLDERS, what=what, value=text)
    return name, RequestSpec(method=words[0], path=words[1])


def _request_body(text: str, *, what: str) -> tuple[str, str]:
    """NAME=JSON or NAME=@file: the body template, read from its file here so workers need no file."""
    name, value = _split_name(text, what=what, expected="'NAME=JSON' or NAME=@file.json")
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except OSError as error:
            raise UsageError(f"{what} cannot read the file of {text!r}: {error.strerror or error}") from None
    _check_placeholders(value, _BODY_PLACEHOLDERS, what=what, value=text)
    sample = RequestSpec(path="/", body=value).render(stream_id="s-0", max_tokens=1, tag="[stream-harness id=s-0]")[2]
    try:
        json.loads(sample)
    except ValueError as error:
        raise UsageError(f"{what} body of {name!r} is not JSON once filled in ({error}): {text!r}") from None
    return name, value


def _request_api(text: str, *, what: str) -> tuple[str, Api]:
    name, api = _split_name(text, what=what, expected="NAME=API")
    try:
        return name, parse_api(api.strip(), what=what)
    except UsageError as error:
        raise UsageError(f"{error} (in {text!r})") from None


def _checked(parse: Any) -> Any:
    """An argparse type that checks the value and keeps its text (flags travel to workers and meta.json as text)."""

    def check(text: str, *, what: str) -> str:
        parse(text, what=what)
        return text

    return check


def add_target_arguments(parser: Any) -> None:
    """The user-target flags, on Locust's parser (not shown in the web UI: they launch things)."""
    from harness.units import argparse_type

    extra = {"include_in_web_ui": False}
    repeat = {"action": "append", "default": []}
    parser.add_argument(
        "--launch",
        type=argparse_type(_checked(parse_launch), "--launch"),
        metavar="'NAME=COMMAND'",
        help="start COMMAND as target NAME; placeholders {port} {host} {upstream} (repeatable)",
        **repeat,
        **extra,
    )
    parser.add_argument(
        "--launch-ready",
        type=argparse_type(_checked(_ready_path), "--launch-ready"),
        metavar="NAME=PATH",
        help="launched target NAME is ready once PATH answers 2xx (default: any HTTP answer on /) (repeatable)",
        **repeat,
        **extra,
    )
    parser.add_argument(
        "--launch-timeout",
        type=argparse_type(parse_duration, "--launch-timeout"),
        default=30.0,
        help="seconds a launched target may take to become ready (default: 30)",
        **extra,
    )
    parser.add_argument(
        "--profile-launched",
        type=argparse_type(_frames, "--profile-launched"),
        default=0,
        metavar="N",
        help="trace launched Python commands with tracemalloc, N frames (0: off; they still run under the probe, "
        "which counts their asyncio tasks) (default: 0)",
        **extra,
    )
    parser.add_argument(
        "--attach",
        type=argparse_type(_checked(parse_attach), "--attach"),
        metavar="'NAME=URL[,pid=PID][,upstream=PORT]'",
        help="load a server already running; sample its process tree when PID is given; start its own fake "
        "upstream on 127.0.0.1:PORT with upstream=PORT (repeatable)",
        **repeat,
        **extra,
    )
    parser.add_argument(
        "--request",
        type=argparse_type(_checked(_request_line), "--request"),
        metavar="'NAME=METHOD PATH'",
        help="send target NAME this request instead of the API's own; {stream_id} {max_tokens} (repeatable)",
        **repeat,
        **extra,
    )
    parser.add_argument(
        "--request-body",
        type=argparse_type(_checked(_request_body), "--request-body"),
        metavar="'NAME=JSON|@FILE'",
        help="body template of target NAME's request; {stream_id} {max_tokens} {tag} (repeatable)",
        **repeat,
        **extra,
    )
    parser.add_argument(
        "--request-api",
        type=argparse_type(_checked(_request_api), "--request-api"),
        metavar="NAME=API",
        help="the API target NAME speaks: openai-chat, openai-responses, anthropic, sse or chunked "
        "(default: --stream-api) (repeatable)",
        **repeat,
        **extra,
    )


def _frames(text: str, *, what: str) -> int:
    if not text.strip().isdigit():
        raise UsageError(f"{what} must be a whole number of frames >= 0, but got {text!r}")
    return int(text)


# -- all of them together ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UserTargets:
    """The targets the user named with --launch and --attach, and the requests they are sent."""

    launches: tuple[LaunchTarget, ...] = ()
    attaches: tuple[AttachTarget, ...] = ()
    requests: Mapping[str, RequestSpec] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.launches or self.attaches)

    @classmethod
    def from_options(cls, options: Any, other_names: Sequence[str] = ()) -> UserTargets:
        """Parse the flags' values together; UsageError (exit 2) for what spans flags. ``other_names``: the
        targets named elsewhere (--target-url, bundled relays), which --request* may also address."""
        ready = dict(_ready_path(text, what="--launch-ready") for text in getattr(options, "launch_ready", []))
        parsed = [parse_launch(text) for text in getattr(options, "launch", [])]
        launches = tuple(_with_ready(target, ready.get(target.name)) for target in parsed)
        attaches = tuple(parse_attach(text) for text in getattr(options, "attach", []))
        names = [*other_names, *(t.name for t in launches), *(t.name for t in attaches)]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise UsageError(f"target name {twice[0]!r} is given twice (--launch, --attach, --target-url, --targets)")
        for name in ready:
            if name not in {t.name for t in launches}:
                raise UsageError(f"--launch-ready names {name!r}, which no --launch starts")
        requests: dict[str, RequestSpec] = {}
        for flag, dest in (
            ("--request", "request"),
            ("--request-body", "request_body"),
            ("--request-api", "request_api"),
        ):
            for text in getattr(options, dest, []):
                name = text.partition("=")[0].strip()
                if name not in names:
                    raise UsageError(
                        f"{flag} names {name!r}, but the targets are {', '.join(names) or 'none'}: {text!r}"
                    )
                spec = requests.get(name, RequestSpec())
                if flag == "--request":
                    line = _request_line(text, what=flag)[1]
                    spec = RequestSpec(line.method, line.path, spec.body, spec.api)
                elif flag == "--request-body":
                    spec = RequestSpec(spec.method, spec.path, _request_body(text, what=flag)[1], spec.api)
                else:
                    spec = RequestSpec(spec.method, spec.path, spec.body, _request_api(text, what=flag)[1])
                requests[name] = spec
        for name, spec in requests.items():
            if spec.body is not None and spec.path is None:
                raise UsageError(f"--request-body for {name!r} needs --request '{name}=METHOD PATH' too")
        return cls(launches, attaches, requests)


def _with_ready(target: LaunchTarget, ready_path: str | None) -> LaunchTarget:
    return LaunchTarget(target.name, target.command, target.argv_template, ready_path)
