"""What the probe accepts as a Python program (its runs in real processes are in test_probe.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.capture.program import parse_program
from harness.errors import UsageError


@pytest.mark.parametrize(
    ("command", "kind", "target", "args"),
    [
        (["python", "-m", "targets.eager", "--port", "0"], "module", "targets.eager", ["--port", "0"]),
        (["-m", "targets.lazy"], "module", "targets.lazy", []),
        ([sys.executable, "-u", "server.py", "-x"], "script", "server.py", ["-x"]),
    ],
)
def test_parse_program_accepts_modules_scripts_and_a_python_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], kind: str, target: str, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "server.py").write_text("")
    program = parse_program(command)
    assert (program.kind, program.target, program.args) == (kind, target, args)


def test_parse_program_accepts_an_extensionless_python_script(tmp_path: Path) -> None:
    script = tmp_path / "serve"
    script.write_text("#!/usr/bin/env python3\n")
    assert parse_program([str(script), "a"]).kind == "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(UsageError, match="neither a .py file nor a python script"):
        parse_program([str(script)])
