"""The probe in real processes: what it accepts as a program, how it runs it, its token guard and its snapshots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.capture.probe import PORT_FILE_ENV, TOKEN_ENV
from tests.support import wait_until

TOKEN = "t0ken-for-the-probe-tests"

# A program that reports how it was run, then holds 3 MB in ``Keeper.chunks`` until told to stop.
PROGRAM = textwrap.dedent(
    """
    import json, sys, time, tracemalloc
    from pathlib import Path

    class Keeper:
        def __init__(self):
            self.chunks = [bytes(30_000 + i) for i in range(100)]

    report = Path(sys.argv[1])
    report.write_text(json.dumps({
        "argv": sys.argv, "name": __name__, "tracing": tracemalloc.is_tracing(),
        "nframe": tracemalloc.get_traceback_limit(), "path0": sys.path[0],
    }))
    keeper = Keeper()
    deadline = time.monotonic() + 60
    while not Path(str(report) + ".stop").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    raise SystemExit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    """
)


def run_probe(*command: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness.capture.probe", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    for signum, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            break
        os.killpg(process.pid, signum)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    if process.stdout:
        process.stdout.close()
    if process.stderr:
        process.stderr.close()


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["--", "node", "server.js"], "node"),
        (["--", "missing_program.py", "--port", "0"], "missing_program.py"),
        (["--", "-m", "no_such_module_for_the_probe"], "no_such_module_for_the_probe"),
        (["--", "python3", "-c", "print(1)"], "'-c'"),
        (["--", "/bin/sh", "-c", "true"], "/bin/sh"),
        (["--"], "needs a command"),
    ],
)
def test_a_command_that_is_not_a_python_program_exits_2_with_one_line(command: list[str], named: str) -> None:
    process = run_probe(*command)
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        stop(process)
    assert process.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("harness probe: error:")
    assert named in lines[0]


def test_harness_probe_subcommand_rejects_a_non_python_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["probe", "--nframe", "1", "--", "node", "server.js"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "'node server.js' is not a Python program" in err


@pytest.mark.parametrize("form", ["script", "module"])
def test_runs_the_program_in_process_traced_with_its_own_argv_and_exit_code(tmp_path: Path, form: str) -> None:
    (tmp_path / "probe_demo.py").write_text(PROGRAM)
    report = tmp_path / "report.json"
    (tmp_path / "report.json.stop").write_text("")  # exit at once
    command = ["python", "probe_demo.py"] if form == "script" else ["-m", "probe_demo"]
    process = run_probe("--nframe", "3", "--", *command, str(report), "7", env={TOKEN_ENV: TOKEN}, cwd=tmp_path)
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        stop(process)
    assert process.returncode == 7, stderr
    seen = json.loads(report.read_text())
    assert seen["name"] == "__main__"
    assert seen["tracing"] is True
    assert seen["nframe"] == 3
    assert seen["argv"][1:] == [str(report), "7"]
    assert Path(seen["argv"][0]).name == "probe_demo.py"
    assert Path(seen["path0"]).resolve() == tmp_path.resolve()
    assert "probe control endpoint at http://127.0.0.1:" in stderr
    assert "listening on" not in stderr  # that phrase is the launcher's signal for the target's own URL


@pytest.fixture
def probed(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """PROGRAM under the probe; yields the probe's port and the program's report path."""
    (tmp_path / "probe_demo.py").write_text(PROGRAM)
    report, port_file = tmp_path / "report.json", tmp_path / "probe.port"
    process = run_probe(
        "--", "probe_demo.py", str(report), env={TOKEN_ENV: TOKEN, PORT_FILE_ENV: str(port_file)}, cwd=tmp_path
    )
    try:
        assert wait_until(lambda: report.exists() or process.poll() is not None, 20), "program did not start"
        assert process.poll() is None, process.communicate()[1]
        yield int(port_file.read_text()), report
    finally:
        stop(process)


def call(port: int, path: str, token: str | None, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def test_requests_without_the_token_get_403(probed: tuple[int, Path]) -> None:
    port, _ = probed
    assert call(port, "/traced", None)[0] == 403
    assert call(port, "/traced", "wrong-token")[0] == 403
    assert call(port, "/snapshot", None, {"snapshot_path": "/tmp/x"})[0] == 403
    status, traced = call(port, "/traced", TOKEN)
    assert status == 200
    assert traced["tracing"] is True
    assert traced["peak_bytes"] >= traced["current_bytes"] > 3_000_000  # the program's Keeper is traced


def test_bad_snapshot_requests_are_answered_400_or_404(probed: tuple[int, Path]) -> None:
    port, _ = probed
    status, answer = call(port, "/snapshot", TOKEN, {"snapshot_path": "relative/path"})
    assert status == 400
    assert "'relative/path'" in answer["error"]
    assert call(port, "/nowhere", TOKEN)[0] == 404


def test_snapshots_are_written_only_inside_the_snapshot_folder(probed: tuple[int, Path], tmp_path: Path) -> None:
    # The probe runs in tmp_path without $STREAM_HARNESS_PROBE_SNAPSHOT_DIR: its working folder is the only root.
    port, _ = probed
    outside = tmp_path.parent / f"{tmp_path.name}-outside.tracemalloc"
    for body in (
        {"snapshot_path": str(outside)},
        {"snapshot_path": str(tmp_path / ".." / outside.name)},  # climbing out with ..
        {"snapshot_path": str(tmp_path / "in.tracemalloc"), "census_path": "/etc/stream-harness-census.json"},
    ):
        status, answer = call(port, "/snapshot", TOKEN, body)
        assert status == 400, answer
        assert "must lie inside" in answer["error"]
    assert not outside.exists()
    assert not Path("/etc/stream-harness-census.json").exists()
    assert call(port, "/snapshot", TOKEN, {"snapshot_path": str(tmp_path / "in.tracemalloc")})[0] == 200


def test_snapshot_dumps_a_loadable_snapshot_and_a_census_that_names_the_holder(
    probed: tuple[int, Path], tmp_path: Path
) -> None:
    port, _ = probed
    snapshot_path, census_path = tmp_path / "out" / "a.tracemalloc", tmp_path / "out" / "a.census.json"
    status, answer = call(
        port, "/snapshot", TOKEN, {"snapshot_path": str(snapshot_path), "census_path": str(census_path)}
    )
    assert status == 200, answer
    snapshot = tracemalloc.Snapshot.load(str(snapshot_path))
    assert answer["traces"] == len(snapshot.traces) > 0
    by_file = {stat.traceback[0].filename: stat.size for stat in snapshot.statistics("filename")}
    assert by_file[str(tmp_path / "probe_demo.py")] > 3_000_000
    census = json.loads(census_path.read_text())
    held = {(row["container"], row["leaf"]): row for row in census["held"]}
    # 100 chunks of 30,000+ bytes, each held once by the list: counted whole
    assert held[("list", "bytes")]["count"] >= 100
    assert held[("list", "bytes")]["bytes"] >= 100 * 30_000
    holders = {row["held_by"] for row in census["holders"] if row["container"] == "list"}
    assert "__main__.Keeper.chunks" in holders


def test_started_by_hand_without_a_token_it_makes_one_up_and_prints_it(tmp_path: Path) -> None:
    (tmp_path / "probe_demo.py").write_text(PROGRAM)
    report = tmp_path / "report.json"
    env = {name: value for name, value in os.environ.items() if name != TOKEN_ENV}
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.capture.probe", "--", "probe_demo.py", str(report)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "token=" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        token = line.strip().rsplit("token=", 1)[1]
        assert len(token) >= 16
        assert call(port, "/traced", None)[0] == 403
        assert call(port, "/traced", token)[0] == 200
    finally:
        (tmp_path / "report.json.stop").write_text("")
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        stop(process)


def test_asyncio_tasks_counts_the_tasks_alive_in_the_process() -> None:
    import asyncio

    from harness.capture.probe import asyncio_tasks

    async def main() -> tuple[int, int, int]:
        before = asyncio_tasks() or 0
        kept = [asyncio.create_task(asyncio.sleep(60)) for _ in range(25)]  # one per "disconnected client"
        await asyncio.sleep(0)
        during = asyncio_tasks() or 0
        for task in kept:
            task.cancel()
        await asyncio.gather(*kept, return_exceptions=True)
        del kept, task
        return before, during, asyncio_tasks() or 0

    before, during, after = asyncio.run(main())
    assert during - before == 25
    assert after == before
