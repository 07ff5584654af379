"""``harness serve`` as a user runs it: a real subprocess, its output, its JSON file, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.cli import main
from tests.support import wait_until


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    servers = tmp_path / "servers.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "serve",
            "--targets",
            "lazy,eager",
            "--json",
            str(servers),
            "--log-dir",
            str(tmp_path / "logs"),
            "--upstream-rate",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, servers
    finally:
        for proc in (
            [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
            if process.poll() is None
            else []
        ):
            proc.kill()
        process.wait(timeout=10)


def test_serve_prints_urls_writes_json_and_stops_everything_on_ctrl_c(
    serve: tuple[subprocess.Popen[str], Path],
) -> None:
    process, servers = serve
    assert wait_until(servers.exists, 30)
    described = json.loads(servers.read_text())
    assert list(described) == ["upstream", "lazy", "eager"]
    pids = [entry["pid"] for entry in described.values()]
    for entry in described.values():
        with urllib.request.urlopen(entry["url"] + "/__harness/stats", timeout=5) as response:
            assert response.status == 200
    argv = described["upstream"]["argv"]
    assert argv[argv.index("--rate") + 1] == "100.0"
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    lines = stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["upstream", "lazy", "eager"]
    assert all(entry["url"] in stdout for entry in described.values())
    assert wait_until(
        lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids), 10
    )


def test_serve_upstream_only(tmp_path: Path) -> None:
    servers = tmp_path / "s.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", "--upstream-only", "--json", str(servers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(servers.exists, 30)
        assert list(json.loads(servers.read_text())) == ["upstream"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_a_dying_target_ends_serve_with_its_name(tmp_path: Path) -> None:
    servers = tmp_path / "s.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", "--targets", "lazy", "--json", str(servers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(servers.exists, 30)
        psutil.Process(json.loads(servers.read_text())["lazy"]["pid"]).kill()
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    assert "harness: error: target 'lazy'" in stderr
    assert "exited with code -9" in stderr
    # its logs went to a temporary folder, removed with the stack: nothing left in the temp dir
    (logs,) = [line.split()[2] for line in stderr.splitlines() if line.startswith("logs in ")]
    assert Path(logs).name.startswith("stream-harness-")
    assert not Path(logs).exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["serve", "--targets", "lazy,turbo"], "'lazy,turbo'"),
        (["serve", "--upstream-rate", "quick"], "'quick'"),
        (["serve", "--server-sndbuf", "-4"], "'-4'"),
        (["bogus"], "'bogus'"),
    ],
)
def test_bad_flags_exit_2_before_launching(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert needle in capsys.readouterr().err.strip().splitlines()[-1]
    assert time.monotonic() - started < 2
    assert not psutil.Process().children()
