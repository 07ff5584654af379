"""User targets: their flags one value at a time and together, the request templates, and launching real commands
that exit at once, never answer, or listen on another port (one error naming the target, nothing left running)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.errors import TargetStartError, UsageError
from harness.launch.process import ChildProcess
from harness.launch.targets_spec import (
    UPSTREAM_ENV,
    AttachTarget,
    LaunchTarget,
    RequestSpec,
    UserTargets,
    add_target_arguments,
    attach_warning,
    format_requests,
    launch_targets,
    parse_attach,
    parse_launch,
    parse_requests,
)
from tests.support import TAG, assert_all_gone

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


def test_attach_with_and_without_pid() -> None:
    assert parse_attach("mine=http://127.0.0.1:8080/,pid=42") == AttachTarget("mine", "http://127.0.0.1:8080", 42)
    attached = parse_attach("far=http://[::1]:9000")
    assert attached.pid is None
    assert attached.port == 9000


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


# -- launching real commands -----------------------------------------------------------------------------------------
@pytest.fixture
def tagged(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A tag in the environment every launched child inherits, to prove none is left running."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG, tag)
    try:
        yield tag
    finally:
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.environ().get(TAG) == tag and process.pid != os.getpid():
                    process.kill()


def _launch(tmp_path: Path, command: str, timeout_s: float = 20.0, ready: str | None = None) -> list[ChildProcess]:
    target = parse_launch(f"mine={command}")
    target = LaunchTarget(target.name, target.command, target.argv_template, ready)
    return launch_targets([target], upstream_url="http://127.0.0.1:9", log_dir=tmp_path, timeout_s=timeout_s)


def test_launched_server_gets_its_port_and_upstream_and_is_stopped(tmp_path: Path, tagged: str) -> None:
    script = tmp_path / "server.py"
    script.write_text(
        "import http.server, os, sys\n"
        "port = int(sys.argv[1])\n"
        f"assert os.environ[{UPSTREAM_ENV!r}] == sys.argv[2] and os.environ['PORT'] == sys.argv[1]\n"
        "http.server.HTTPServer(('127.0.0.1', port), http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    (child,) = _launch(tmp_path, f"{PY} {script} {{port}} {{upstream}}")
    try:
        assert child.url is not None
        assert child.poll() is None
    finally:
        child.stop(2.0)
    assert_all_gone(tagged)


def test_command_that_exits_at_once_names_target_code_and_output(tmp_path: Path, tagged: str) -> None:
    with pytest.raises(TargetStartError) as caught:
        _launch(tmp_path, f"{PY} -c \"import sys; print('no such model'); sys.exit(3)\"")
    message = str(caught.value)
    assert "'mine'" in message
    assert "code 3" in message
    assert "no such model" in message
    assert_all_gone(tagged)


def test_command_that_never_answers_is_stopped_with_its_exit_code(tmp_path: Path, tagged: str) -> None:
    with pytest.raises(TargetStartError) as caught:
        _launch(tmp_path, f"{PY} -c \"import time; print('loading weights', flush=True); time.sleep(60)\"", 1.0)
    message = str(caught.value)
    assert "'mine'" in message
    assert "never answered" in message
    assert "exit code -15" in message  # stopped by SIGTERM
    assert "loading weights" in message
    assert_all_gone(tagged)


def test_command_on_another_port_says_which(tmp_path: Path, tagged: str) -> None:
    with pytest.raises(TargetStartError) as caught:
        _launch(tmp_path, f"{PY} -m http.server --bind 127.0.0.1 0", 2.0)
    message = str(caught.value)
    assert "'mine'" in message
    assert "listens on port" in message
    assert "{port}" in message
    assert_all_gone(tagged)


def test_ready_path_must_answer_2xx(tmp_path: Path, tagged: str) -> None:
    with pytest.raises(TargetStartError, match="/health never answered"):
        _launch(tmp_path, f"{PY} -m http.server --bind 127.0.0.1 {{port}}", 2.0, ready="/health")
    assert_all_gone(tagged)


def test_attach_warns_when_the_pid_does_not_listen_on_the_port() -> None:
    me = os.getpid()
    warning = attach_warning(AttachTarget("mine", "http://127.0.0.1:9", me))
    assert warning is not None
    assert f"pid {me} does not listen on port 9" in warning
    assert attach_warning(AttachTarget("mine", "http://127.0.0.1:9")) is None
