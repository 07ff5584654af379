"""Every flag value checked in the Locust process before anything is launched: one line naming the flag, the value
and what was expected, exit 2, no run folder, no process. (The ranges themselves: tests/launch/test_stack.py and
tests/test_units.py, in-process; importing the plugin here would monkey-patch the test process.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import DISCONNECTS, assert_all_gone, locust

NOT_A_FOLDER = "pyproject.toml/sub"
"""Under a regular file: unwritable even for root (the tests may run as root, where permissions do not bite)."""


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--targets", "eager,nope"),
        ("--target-url", "lazy=ftp://127.0.0.1:80"),
        ("--target-url", "http://127.0.0.1:8080"),
        ("--upstream-rate", "fast"),
        ("--client-rcvbuf", "100"),
        ("--read-pace", "quickly"),
        ("--scenario-scale", "0"),
        ("--scenario-scale", "inf"),
        ("--scenario-scale", "1e400"),
        ("--sample-interval", "1ms"),
        ("--upstream-tokens", "2000000"),
        ("--upstream-first-token-delay", "700s"),
        ("--run-dir", f"{NOT_A_FOLDER}/reports"),
        ("--gate-junit", f"{NOT_A_FOLDER}/junit.xml"),
        ("--gate-config", "no-such-pyproject.toml"),
        ("--html", f"{NOT_A_FOLDER}/report.html"),
    ],
)
def test_bad_flag_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path, flag: str, value: str) -> None:
    extra = ("--gate",) if flag.startswith("--gate") else ()
    with locust(tmp_path, "-f", DISCONNECTS, "--headless", *extra, flag, value) as run:
        assert run.wait(60) == 2, run.output()[-2000:]
        errors = [line for line in run.output().splitlines() if "error" in line.lower()]
        assert len(errors) == 1, run.output()
        assert flag in errors[0] or flag == "--gate-config"
        assert repr(value) in errors[0] or value in errors[0]
        assert "Traceback" not in run.output()
        assert not run.run_dir.exists()  # no run folder, no process launched
        assert_all_gone(run.tag)


def test_help_with_the_plugins_flags_and_a_flag_check_that_starts_nothing(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness.plugin", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    shown = run("--help")
    assert shown.returncode == 0
    for flag in ("--upstream-tokens", "--scenario-scale", "--launch", "--gate", "--headless"):
        assert flag in shown.stdout
    bad = run("--upstream-tokens", "2000000")
    assert bad.returncode == 2
    assert (
        bad.stderr.strip().splitlines()[-1].endswith("--upstream-tokens must be from 0 to 1,000,000, but got '2000000'")
    )
    assert run("--upstream-tokens", "20").returncode == 0
