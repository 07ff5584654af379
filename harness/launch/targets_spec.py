"""The user's own servers as targets: the flags that name them, launching them, attaching to them, and the request
each one is sent.

    --launch 'NAME=COMMAND'          start COMMAND (shlex-split, no shell) with {port} (a free port the harness
                                     picks), {host} (127.0.0.1) and {upstream} (the fake upstream's URL, also in
                                     $STREAM_HARNESS_UPSTREAM_URL); its port is also in $PORT and $STREAM_HARNESS_PORT
    --launch-ready NAME=PATH         ready once PATH answers 2xx (default: any HTTP answer on /)
    --launch-timeout DURATION        how long a launched target may take to become ready (default: 30s)
    --profile-launched N             run launched Python commands under the tracemalloc probe, N frames (0 = off)
    --attach 'NAME=URL[,pid=PID]'    a server already running; with a PID its process tree is sampled from outside
    --request 'NAME=METHOD PATH'     what NAME is sent instead of POST /v1/chat/completions
    --request-body 'NAME=JSON'       its body template, or NAME=@file.json; {stream_id} and {max_tokens} are filled in
    --request-api NAME=sse|chunked   how NAME's answer is read (default: --stream-api)

Every flag value is checked by Locust's parser (exit 2, naming the flag and the value); what spans flags (names
unique across targets, a request for a target nobody named) is checked by :meth:`UserTargets.from_options`
before anything is launched. A launched target that exits, never answers, or listens on another port stops the
run with one :class:`TargetStartError` naming it, its exit code and its last output lines; nothing is left running.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from harness.capture.probe_client import ProbeLaunch
from harness.capture.program import parse_program
from harness.errors import TargetStartError, UsageError
from harness.launch.process import ChildProcess, LaunchSpec, stop_all
from harness.units import parse_duration

__all__ = [
    "UPSTREAM_ENV",
    "AttachTarget",
    "LaunchTarget",
    "RequestSpec",
    "UserTargets",
    "add_target_arguments",
    "attach_warning",
    "launch_targets",
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
_BODY_PLACEHOLDERS = ("stream_id", "max_tokens")
_METHOD = re.compile(r"[A-Z]+")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")

Api = Literal["sse", "chunked"]


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
    """Template with ``{stream_id}`` and ``{max_tokens}``; None = no body (or the API's own when path is None)."""
    api: Api | None = None
    """How the answer is read; None = the scenario's or ``--stream-api``."""

    def render(self, *, stream_id: str, max_tokens: int) -> tuple[str, str, bytes]:
        """(method, path, body) with the placeholders filled in; the path's value is URL-quoted."""
        values = {"stream_id": stream_id, "max_tokens": str(max_tokens)}
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
    """``"mine=http://127.0.0.1:8080,pid=1234"`` -> AttachTarget."""
    name, rest = _split_name(text, what=what, expected="'NAME=URL[,pid=PID]'")
    url, _, options = rest.partition(",")
    parts = urlsplit(url.strip())
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"{what} takes 'NAME=http://HOST:PORT[,pid=PID]', but got {text!r}")
    pid: int | None = None
    if options.strip():
        key, equals, value = options.strip().partition("=")
        if key.strip() != "pid" or not equals or not value.strip().isdigit() or int(value) < 1:
            raise UsageError(f"{what} takes 'NAME=URL[,pid=PID]' with PID a whole number >= 1, but got {text!r}")
        pid = int(value)
    return AttachTarget(name, url.strip().rstrip("/"), pid)


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
    sample = RequestSpec(path="/", body=value).render(stream_id="s-0", max_tokens=1)[2]
    try:
        json.loads(sample)
    except ValueError as error:
        raise UsageError(f"{what} body of {name!r} is not JSON once filled in ({error}): {text!r}") from None
    return name, value


def _request_api(text: str, *, what: str) -> tuple[str, Api]:
    name, api = _split_name(text, what=what, expected="NAME=sse or NAME=chunked")
    if api not in ("sse", "chunked"):
        raise UsageError(f"{what} takes NAME=sse or NAME=chunked, but got {text!r}")
    return name, "chunked" if api == "chunked" else "sse"


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
        help="run launched Python commands under the tracemalloc probe with N frames (0 = off) (default: 0)",
        **extra,
    )
    parser.add_argument(
        "--attach",
        type=argparse_type(_checked(parse_attach), "--attach"),
        metavar="'NAME=URL[,pid=PID]'",
        help="load a server already running; sample its process tree when PID is given (repeatable)",
        **repeat,
        **extra,
    )
    parser.add_argument(
        "--request",
        type=argparse_type(_checked(_request_line), "--request"),
        metavar="'NAME=METHOD PATH'",
        help="send target NAME this request instead of POST /v1/chat/completions; {stream_id} {max_tokens} "
        "(repeatable)",
        **repeat,
        **extra,
    )
    parser.add_argument(
        "--request-body",
        type=argparse_type(_checked(_request_body), "--request-body"),
        metavar="'NAME=JSON|@FILE'",
        help="body template of target NAME's request; {stream_id} {max_tokens} (repeatable)",
        **repeat,
        **extra,
    )
    parser.add_argument(
        "--request-api",
        type=argparse_type(_checked(_request_api), "--request-api"),
        metavar="NAME=sse|chunked",
        help="read target NAME's answer as SSE events or plain chunks (default: --stream-api) (repeatable)",
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


# -- launching ----------------------------------------------------------------------------------------------------
def free_port(host: str = LAUNCH_HOST) -> int:
    """A port free right now (the launched server binds it a moment later; a race nobody else on loopback runs)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _is_python(argv: Sequence[str]) -> bool:
    try:
        parse_program(argv)
    except UsageError:
        return False
    return True


def launch_targets(
    launches: Sequence[LaunchTarget],
    *,
    upstream_url: str | None,
    log_dir: Path,
    timeout_s: float,
    profile_nframe: int = 0,
) -> list[ChildProcess]:
    """Start every launched target and wait until each answers; on any failure stop them all, then raise."""
    children: list[ChildProcess] = []
    try:
        for target in launches:
            if target.needs_upstream and upstream_url is None:
                raise TargetStartError(f"launched target {target.name!r} needs {{upstream}}, but no upstream runs")
            port = free_port()
            argv = target.argv(port=port, upstream_url=upstream_url or "")
            env = {PORT_ENV: str(port), "PORT": str(port)}
            if upstream_url:
                env[UPSTREAM_ENV] = upstream_url
            if profile_nframe and _is_python(argv):
                # The probe runs the program in the harness's own Python (it imports harness.capture.probe).
                probe = ProbeLaunch.new(log_dir / f"{target.name}.probe-port", profile_nframe)
                argv, env = probe.argv(argv), env | probe.env()
            elif profile_nframe:
                log.info("%s is not a Python command: psutil samples only, no tracemalloc", target.name)
            spec = LaunchSpec(target.name, argv, target.ready_path, f"http://{LAUNCH_HOST}:{port}", env)
            children.append(ChildProcess(spec, log_dir / f"{target.name}.log"))
        for child in children:
            wait_answering(child, timeout_s)
    except BaseException:
        stop_all(children, grace_s=STOP_GRACE_S)
        raise
    return children


def _answers(url: str, *, any_status: bool) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return 200 <= int(response.status) < 300
    except urllib.error.HTTPError:
        return any_status  # an HTTP answer all the same
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(child: ChildProcess) -> str:
    lines = child.last_lines(TAIL_LINES)
    return " | ".join(lines) if lines else "(no output)"


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process and its descendants listen on (empty if it cannot be read)."""
    import psutil

    ports: set[int] = set()
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return ports
    for process in processes:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports.update(c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN and c.laddr)
    return ports


def wait_answering(child: ChildProcess, timeout_s: float) -> None:
    """Block until the launched target answers at its URL; else stop it and raise TargetStartError."""
    assert child.url is not None
    path = child.spec.ready_path or "/"
    port = urlsplit(child.url).port
    deadline = time.monotonic() + timeout_s
    while True:
        code = child.poll()
        if code is not None:
            raise TargetStartError(
                f"launched target {child.name!r} exited with code {code} before it answered on {child.url}; "
                f"last output: {_tail(child)}"
            )
        if _answers(child.url + path, any_status=child.spec.ready_path is None):
            return
        if time.monotonic() >= deadline:
            others = sorted(listening_ports(child.pid) - {port} if port else set())
            code = child.stop(STOP_GRACE_S)
            where = (
                f"it listens on port {', '.join(map(str, others))} instead (use {{port}} or $PORT in its command)"
                if others
                else f"{child.url}{path} never answered"
            )
            raise TargetStartError(
                f"launched target {child.name!r} was not ready after {timeout_s:g} s: {where}; "
                f"stopped it (exit code {code}); last output: {_tail(child)}"
            )
        time.sleep(0.1)


def attach_warning(target: AttachTarget) -> str | None:
    """One sentence when the attached PID is gone or does not listen on the URL's port; else None."""
    if target.pid is None:
        return None
    import psutil

    if not psutil.pid_exists(target.pid):
        return f"attached target {target.name!r}: pid {target.pid} does not exist; its server figures will be missing"
    ports = listening_ports(target.pid)
    if target.port not in ports:
        found = ", ".join(map(str, sorted(ports))) or "no port (or none it may read)"
        return (
            f"attached target {target.name!r}: pid {target.pid} does not listen on port {target.port} of {target.url} "
            f"(it listens on {found}); are the samples of the right process?"
        )
    return None
