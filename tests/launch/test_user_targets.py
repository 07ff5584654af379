"""The user's own servers as targets, through real Locust runs: third-party-style servers launched from a command
line (FastAPI under uvicorn, written eagerly and lazily; a Node.js proxy), a server attached by PID, a service with
another API, bad launches, and a master with two workers reading a server's figures from a `harness agent`.

Only the launched servers' test needs the leave waves of locustfiles/disconnects.py; the attached, other-API and
distributed runs need streams only, and run tests/short_scenario.py (about 7 s)."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.launch.process import ChildProcess, LaunchSpec, stop_all
from harness.launch.stack import StackOptions, start_bundled_stack
from tests.support import DISCONNECTS, SHORT, assert_all_gone, free_port, locust

PY = shlex.quote(sys.executable)
UVICORN = f"{PY} -m uvicorn --host 127.0.0.1 --port {{port}} --no-access-log tests.targets_apps.fastapi_proxy"
NODE_PROXY = "node tests/targets_apps/node_proxy.js --port {port} --upstream {upstream}"
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def summary(folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return result


@pytest.fixture(scope="module")
def lazy_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildProcess]:
    """A bundled lazy relay (and its upstream) started by the module, as a server already running would be; shared
    by the tests that attach to it (they must not assume it is idle)."""
    children = start_bundled_stack(StackOptions(relays=("lazy",)), tmp_path_factory.mktemp("own-stack"))
    try:
        yield children[1]
    finally:
        stop_all(children, grace_s=3.0)


@pytest.mark.slow
@needs_node
def test_launched_servers_show_what_they_really_do_when_clients_leave(tmp_path: Path) -> None:
    with locust(
        tmp_path, "-f", DISCONNECTS, "--headless", "--scenario-scale", "0.25",
        "--launch", f"fastapi-eager={UVICORN}:eager_app",
        "--launch", f"fastapi-lazy={UVICORN}:lazy_app",
        "--launch", f"node={NODE_PROXY}",
    ) as run:  # fmt: skip
        assert run.wait(110) == 0, run.output()[-3000:]
        judged = summary(run.folder())
        targets = judged["targets"]
        cancelling = ("leaked_streams", "cancel_latency", "tokens_after_leave")
        states: dict[str, set[str]] = {c["target"]: set() for c in judged["checks"]}
        for check in judged["checks"]:
            if check["check"] in cancelling:
                states[check["target"]].add(check["state"])
        names = ("fastapi-eager", "fastapi-lazy", "node")
        assert set(targets) == {*names, *(f"upstream@{name}" for name in names)}  # each with its own upstream
        for name in ("fastapi-eager", "fastapi-lazy", "node"):
            assert targets[name]["upstream"]["basis"] == "id:prompt"  # matched through the tag in the forwarded body
            assert targets[name]["memory"]["available"] is not False  # its process tree was sampled
            assert targets[name]["cancellation"]["left_streams"] > 0
        eager, lazy, node = (targets[name]["cancellation"] for name in ("fastapi-eager", "fastapi-lazy", "node"))
        # the eager app's pump reads on for nobody; the lazy app and the Node proxy close the upstream stream
        assert "fail" in states["fastapi-eager"]
        assert eager["tokens_after_leave_share"] > 0.5
        for name, figures in (("fastapi-lazy", lazy), ("node", node)):
            assert figures["never_closed"] == 0, (name, figures)
            assert figures["tokens_after_leave_share"] < eager["tokens_after_leave_share"] / 2, (name, figures)
            assert "fail" not in states[name], judged["checks"]
        assert_all_gone(run.tag)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--launch", "mine=server --port {prot}"), "--launch"),
        (("--attach", "mine=http://127.0.0.1:80,pid=x"), "--attach"),
        (("--request", "mine=FETCH /x"), "--request"),
        (("--request-body", "mine={not json"), "--request-body"),
        (("--launch", "mine=x --port {port}", "--request", "ghost=GET /x"), "--request"),
        (("--launch", "lazy=x --port {port}", "--targets", "lazy"), "lazy"),
    ],
)
def test_bad_target_flags_exit_2_before_anything_launches(tmp_path: Path, args: tuple[str, ...], flag: str) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless", *args) as run:
        assert run.wait(60) == 2
        errors = [line for line in run.output().splitlines() if "error" in line.lower()]
        assert len(errors) == 1, run.output()
        assert flag in errors[0]
        assert "Traceback" not in run.output()
        assert not run.run_dir.exists()
        assert_all_gone(run.tag)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (f"{PY} -c \"import sys; print('missing API key'); sys.exit(4)\"", ("exited with code 4", "missing API key")),
        (f"{PY} -m http.server --bind 127.0.0.1 0", ("listens on port", "exit code")),
    ],
    ids=["exits-at-once", "another-port"],
)
def test_bad_launch_is_one_error_line_and_nothing_left(tmp_path: Path, command: str, expected: tuple[str, str]) -> None:
    with locust(
        tmp_path, "-f", DISCONNECTS, "--headless", "--launch", f"mine={command}", "--launch-timeout", "2s"
    ) as run:
        assert run.wait(60) == 1
        output = run.output()
        errors = [line for line in output.splitlines() if line.startswith("locust: error:")]
        assert len(errors) == 1, output
        assert "'mine'" in errors[0]
        for text in expected:
            assert text in errors[0], errors[0]
        assert "Traceback" not in output
        assert run.meta()["status"] == "interrupted"
        assert_all_gone(run.tag)


@pytest.mark.slow
def test_server_attached_by_pid_is_sampled(tmp_path: Path, lazy_relay: ChildProcess) -> None:
    with locust(
        tmp_path, "-f", SHORT, "--headless",
        "--attach", f"mine={lazy_relay.url},pid={lazy_relay.pid}",
    ) as run:  # fmt: skip
        assert run.wait(60) == 0, run.output()[-3000:]
        rows = [row for row in run.table("samples") if row["target"] == "mine"]
        assert len(rows) > 5
        assert {row["pid"] for row in rows} == {str(lazy_relay.pid)}
        assert all(int(row["rss_bytes"]) > 0 for row in rows)
        clients = run.table("clients")
        assert {row["target"] for row in clients} == {"mine"}
        assert "attach_warning" not in {row["kind"] for row in run.table("events")}
        assert summary(run.folder())["targets"]["mine"]["memory"]["peak_rss_bytes"] > 0
        assert lazy_relay.poll() is None  # attached, so not stopped by the harness


def test_attaching_a_pid_that_serves_another_port_warns(tmp_path: Path, lazy_relay: ChildProcess) -> None:
    idle = ChildProcess(
        LaunchSpec("idle", [sys.executable, "-c", "import time; time.sleep(60)"]), tmp_path / "idle.log"
    )
    try:
        with locust(
            tmp_path, "-f", SHORT, "--headless",
            "--attach", f"mine={lazy_relay.url},pid={idle.pid}",  # alive, listening on no port
        ) as run:  # fmt: skip
            run.wait(60)
            warnings = [line for line in run.output().splitlines() if "does not listen on port" in line]
            assert len(warnings) == 1, run.output()[-3000:]
            assert "'mine'" in warnings[0]
            assert "attach_warning" in {row["kind"] for row in run.table("events")}
    finally:
        idle.stop(1.0)


@pytest.mark.slow
def test_service_with_another_api_gets_its_own_request(tmp_path: Path) -> None:
    # the service here is another fake upstream (its own flags: the --upstream-* flags set the harness's upstreams)
    upstream = f"{PY} -m targets.upstream --host 127.0.0.1 --port {{port}} --tokens 20 --rate 0"
    body = (
        '{"model": "m", "stream": true, "user": "{stream_id}", "max_tokens": {max_tokens}, '
        '"messages": [{"role": "user", "content": "hi {tag}"}]}'
    )
    with locust(
        tmp_path, "-f", SHORT, "--headless",
        "--launch", f"plain={upstream}",
        "--request", "plain=GET /v1/stream?user={stream_id}",
        "--request-api", "plain=chunked",
        "--launch", f"chat={upstream}",
        "--request", "chat=POST /v1/chat/completions",
        "--request-body", f"chat={body}",
    ) as run:  # fmt: skip
        assert run.wait(60) == 0, run.output()[-3000:]
        clients = run.table("clients")
        for name in ("plain", "chat"):
            done = [row for row in clients if row["target"] == name and row["outcome"] == "completed"]
            assert done, f"no completed stream for {name}: {[r for r in clients if r['target'] == name][:3]}"
            assert all(row["status"] == "200" and int(row["tokens"]) == 20 for row in done), done[:3]


@pytest.mark.slow
def test_master_two_workers_and_an_agent_make_one_report(tmp_path: Path, lazy_relay: ChildProcess) -> None:
    agent = ChildProcess(
        LaunchSpec(
            "agent",
            [sys.executable, "-m", "harness", "agent", "--pid", str(lazy_relay.pid), "--port", "0",
             "--name", "mine", "--interval", "100ms", "--out", str(tmp_path / "agent")],
            ready_path=None,
        ),
        tmp_path / "agent.log",
    )  # fmt: skip
    try:
        agent_url = agent.wait_ready(15)
        port, tag = free_port(), uuid.uuid4().hex
        common = ("-f", SHORT)
        worker = ("--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
        with (
            locust(tmp_path, *common, "--headless", "--master", "--expect-workers", "2",
                   "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                   "--attach", f"mine={lazy_relay.url}", "--agent", f"mine={agent_url}",
                   tag=tag, name="master") as master,
            locust(tmp_path, *common, *worker, tag=tag, name="worker1"),
            locust(tmp_path, *common, *worker, tag=tag, name="worker2"),
        ):  # fmt: skip
            assert master.wait(100) == 0, master.output()[-3000:]
            workers = {row["worker"] for row in master.table("clients")}
            assert len(workers) == 2
            assert "local" not in workers
            rows = [row for row in master.table("samples") if row["target"] == "mine"]
            assert {row["pid"] for row in rows} == {str(lazy_relay.pid)}  # the agent's rows, under the master's name
            mine = summary(master.folder())["targets"]["mine"]
            assert mine["memory"]["peak_rss_bytes"] > 0
            assert mine["clients"]["streams"] > 0
            assert master.meta()["agents"]["mine"]["status"] != "missing"
            assert (master.folder() / "report.html").exists()
            assert_all_gone(tag, timeout_s=20)
    finally:
        agent.stop(3.0)
