"""Launching --launch targets for real: ports, their own upstream's URL, readiness, stopping; attach checks."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.errors import TargetStartError
from harness.launch.launched import attach_warning, launch_targets
from harness.launch.process import ChildProcess
from harness.launch.targets_spec import UPSTREAM_ENV, AttachTarget, LaunchTarget, parse_launch
from tests.support import TAG, assert_all_gone

PY = shlex.quote(sys.executable)


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
    return launch_targets([target], upstream_urls={"mine": "http://127.0.0.1:9"}, log_dir=tmp_path, timeout_s=timeout_s)


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


ASYNC_SERVER = """
import asyncio, sys

async def main(port):
    kept = [asyncio.ensure_future(asyncio.sleep(60)) for _ in range(7)]
    async def answer(reader, writer):
        await reader.readline()
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(answer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()

asyncio.run(main(int(sys.argv[1])))
"""


def test_a_python_command_in_our_environment_runs_under_the_probe_that_only_counts(tmp_path: Path, tagged: str) -> None:
    from harness.capture.probe import NFRAME_ENV
    from harness.capture.probe_client import ProbeClient

    script = tmp_path / "server.py"
    script.write_text(ASYNC_SERVER)
    (child,) = _launch(tmp_path, f"{PY} {script} {{port}}")
    try:
        assert child.spec.env[NFRAME_ENV] == "0"
        probe = ProbeClient.for_child(child)
        assert not probe.tracing
        reading = probe.reading()
        assert reading.current_bytes is None
        assert reading.asyncio_tasks is not None
        assert reading.asyncio_tasks >= 7 + 1  # the kept tasks and the server's own
    finally:
        child.stop(2.0)
    assert_all_gone(tagged)


def test_a_command_naming_another_environments_python_runs_as_given(tmp_path: Path, tagged: str) -> None:
    from harness.capture.probe import TOKEN_ENV

    other = tmp_path / "other-venv" / "bin"
    other.mkdir(parents=True)
    (other / "python3").symlink_to(sys.executable)  # same binary, but another environment's bin folder
    script = tmp_path / "server.py"
    script.write_text(ASYNC_SERVER)
    (child,) = _launch(tmp_path, f"{other / 'python3'} {script} {{port}}")
    try:
        assert TOKEN_ENV not in child.spec.env
        assert child.spec.argv[0] == str(other / "python3")
    finally:
        child.stop(2.0)
    assert_all_gone(tagged)
