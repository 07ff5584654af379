"""User targets: their flags one value at a time and together, the request templates, and launching real commands
that exit at once, never answer, or listen on another port (one error naming the target, nothing left running)."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.launch.targets_spec import (
    AttachTarget,
    RequestSpec,
    UserTargets,
    add_target_arguments,
    format_requests,
    parse_attach,
    parse_launch,
    parse_requests,
)

PY = shlex.quote(sys.executable)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_target_arguments(_NoWebUi(parser))
    return parser.parse_args(list(argv))


class _NoWebUi:
    """Locust's parser takes include_in_web_ui; plain argparse does not."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser

    def add_argument(self, *args: object, include_in_web_ui: bool = True, **kwargs: object) -> None:
        self.parser.add_argument(*args, **kwargs)  # type: ignore[arg-type]


# -- flags --------------------------------------------------------------------------------------------------------
def test_launch_fills_in_port_host_and_upstream_and_keeps_shell_words() -> None:
    target = parse_launch("mine=node server.js --port {port} --upstream {upstream} --name 'a b'")
    assert target.name == "mine"
    assert target.needs_upstream
    argv = target.argv(port=8123, upstream_url="http://127.0.0.1:9000")
    assert argv == ["node", "server.js", "--port", "8123", "--upstream", "http://127.0.0.1:9000", "--name", "a b"]
    # ${VAR} is the shell's, not a placeholder (sh -c '... ${HOME}')
    assert parse_launch("x=sh -c 'exec server --home ${HOME} --port {port}'").argv(port=1, upstream_url="")[2] == (
        "exec server --home ${HOME} --port 1"
    )


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--launch", "no-equals-sign"),
        ("--launch", "bad name=cmd"),
        ("--launch", "x="),
        ("--launch", "x=server --port {prot}"),
        ("--launch", "x=server 'unclosed"),
        ("--launch-ready", "x=health"),
        ("--launch-timeout", "soon"),
        ("--profile-launched", "-1"),
        ("--attach", "x=ftp://127.0.0.1:80"),
        ("--attach", "x=http://127.0.0.1:80,pid=zero"),
        ("--attach", "x=http://127.0.0.1:99999"),
        ("--request", "x=FETCH"),
        ("--request", "x=get /x"),
        ("--request", "x=GET /x/{user}"),
        ("--request-body", "x={not json"),
        ("--request-body", "x=@/nonexistent/body.json"),
        ("--request-api", "x=grpc"),
    ],
)
def test_bad_flag_value_names_the_flag_and_the_value(flag: str, value: str) -> None:
    with pytest.raises(argparse.ArgumentError) as caught:
        _parse(flag, value)
    message = str(caught.value)
    assert flag in message
    assert value in message


def test_attach_with_and_without_pid_and_upstream_port() -> None:
    assert parse_attach("mine=http://127.0.0.1:8080/,pid=42") == AttachTarget("mine", "http://127.0.0.1:8080", 42)
    attached = parse_attach("far=http://[::1]:9000")
    assert attached.pid is None
    assert attached.port == 9000
    both = parse_attach("mine=http://127.0.0.1:8080,upstream=9100,pid=7")
    assert (both.pid, both.upstream_port) == (7, 9100)


@pytest.mark.parametrize("value", ["pid=0", "upstream=70000", "upstream=x", "pid=1,pid=2", "port=9"])
def test_bad_attach_options_name_the_value(value: str) -> None:
    text = f"mine=http://127.0.0.1:8080,{value}"
    with pytest.raises(UsageError, match=r"upstream=PORT.*" + re.escape(repr(text))):
        parse_attach(text)


def test_flags_together_build_targets_and_requests(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"prompt": "hi", "id": "{stream_id}", "max_tokens": {max_tokens}}')
    options = _parse(
        "--launch", "a=server --port {port}",
        "--launch-ready", "a=/health",
        "--attach", "b=http://127.0.0.1:8080,pid=7",
        "--request", "a=POST /api/generate",
        "--request-body", f"a=@{body}",
        "--request-api", "a=chunked",
        "--request-api", "lazy=chunked",
    )  # fmt: skip
    user = UserTargets.from_options(options, ["lazy"])
    assert [t.name for t in user.launches] == ["a"]
    assert user.launches[0].ready_path == "/health"
    assert user.attaches == (AttachTarget("b", "http://127.0.0.1:8080", 7),)
    assert user.requests["a"].path == "/api/generate"
    assert user.requests["a"].api == "chunked"
    assert user.requests["lazy"] == RequestSpec(api="chunked")
    # the form in which they reach the workers
    assert parse_requests(format_requests(user.requests)) == dict(user.requests)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("--launch", "a=x", "--attach", "a=http://127.0.0.1:1"), "'a' is given twice"),
        (("--launch", "lazy=x"), "'lazy' is given twice"),
        (("--request", "ghost=GET /x"), "--request names 'ghost'"),
        (("--launch", "a=x", "--launch-ready", "b=/health"), "--launch-ready names 'b'"),
        (("--launch", "a=x", "--request-body", 'a={"k": 1}'), "needs --request 'a=METHOD PATH'"),
    ],
)
def test_flags_that_do_not_fit_together_are_usage_errors(argv: tuple[str, ...], expected: str) -> None:
    with pytest.raises(UsageError, match=expected.replace("(", r"\(")):
        UserTargets.from_options(_parse(*argv), ["lazy"])


def test_request_template_fills_in_stream_id_and_max_tokens() -> None:
    spec = RequestSpec("POST", "/gen/{stream_id}?n={max_tokens}", '{"id": "{stream_id}", "n": {max_tokens}}')
    method, path, body = spec.render(stream_id="s-1 2", max_tokens=50)
    assert method == "POST"
    assert path == "/gen/s-1%202?n=50"
    assert json.loads(body) == {"id": "s-1 2", "n": 50}
