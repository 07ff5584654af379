"""The gate's outputs: console lines, JUnit XML (one case per target and check), Markdown and $GITHUB_STEP_SUMMARY;
and the command's exit codes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.gate.output import console_lines, junit_xml, markdown, write_markdown
from harness.gate.verdict import GateVerdict, TargetVerdict
from harness.judge.check import Check
from tests.runfolders import MIB, CraftedRun, flat, leak, leaving_streams


def _check(target: str, name: str, state: str, sentence: str) -> Check:
    return Check.from_dict({"target": target, "check": name, "state": state, "sentence": sentence})


RUN_OK = (_check("run", "run_complete", "pass", "the run finished all 5 phases, drain included, in 58 s"),)
VERDICT = GateVerdict(
    "reports/mixed-1",
    RUN_OK,
    (
        TargetVerdict(
            "eager",
            (
                _check(
                    "eager", "backlog_slow_readers", "fail", "48.2 MiB of RSS held for slow readers (limit 16.0 MiB)"
                ),
                _check("eager", "leaked_streams", "pass", "0 upstream streams ... (limit 0)"),
            ),
            expect_fail=True,
        ),
        TargetVerdict(
            "lazy",
            (
                _check("lazy", "backlog_slow_readers", "warn", "5.0 MiB of RSS held | a step"),
                _check("lazy", "leaked_streams", "fail", "1 upstream stream still open (limit 0)"),
            ),
        ),
    ),
    notes=("no warm-up phase",),
)


def test_console_has_a_line_per_check_and_per_control() -> None:
    lines = console_lines(VERDICT)
    assert lines[0] == "gate: judging reports/mixed-1"
    assert "PASS       run run_complete: the run finished all 5 phases, drain included, in 58 s" in lines
    assert "XFAIL      eager backlog_slow_readers: 48.2 MiB of RSS held for slow readers (limit 16.0 MiB)" in lines
    assert "WARN       lazy backlog_slow_readers: 5.0 MiB of RSS held | a step" in lines
    assert "FAIL       lazy leaked_streams: 1 upstream stream still open (limit 0)" in lines
    assert any(line.startswith("PASS       eager positive_control: expected to fail (positive") for line in lines)
    assert lines[-1] == "gate: FAIL (1 of 2 targets failed: lazy; 1 warning)"


def test_junit_has_one_case_per_target_and_check_and_fails_the_right_ones() -> None:
    root = ET.fromstring(junit_xml(VERDICT))
    cases = root.findall("./testsuite/testcase")
    assert [(case.get("classname"), case.get("name")) for case in cases] == [
        ("gate.run", "run_complete"),
        ("gate.eager", "backlog_slow_readers"),
        ("gate.eager", "leaked_streams"),
        ("gate.eager", "positive_control"),
        ("gate.lazy", "backlog_slow_readers"),
        ("gate.lazy", "leaked_streams"),
    ]
    failed = [
        case.get("classname", "") + "." + case.get("name", "") for case in cases if case.find("failure") is not None
    ]
    assert failed == ["gate.lazy.leaked_streams"]
    assert root.get("tests") == "6"
    assert root.get("failures") == "1"
    eager_memory = cases[1].findtext("system-out") or ""
    assert eager_memory.startswith("expected failure (positive control): 48.2 MiB of RSS held")
    assert (cases[4].findtext("system-out") or "").startswith("WARNING: 5.0 MiB")


def test_a_positive_control_that_passed_is_a_junit_failure() -> None:
    quiet = GateVerdict(
        "r", RUN_OK, (TargetVerdict("eager", (_check("eager", "leaked_streams", "pass", "ok"),), True),)
    )
    root = ET.fromstring(junit_xml(quiet))
    control = root.find("./testsuite/testcase[@name='positive_control']")
    assert control is not None
    failure = control.find("failure")
    assert failure is not None
    assert "passed every check" in (failure.get("message") or "")


def test_markdown_table_and_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = markdown(VERDICT)
    assert text.startswith("### stream-harness gate: FAIL\n")
    assert "| lazy | backlog_slow_readers | **warn** | 5.0 MiB of RSS held \\| a step |" in text
    assert "| eager | backlog_slow_readers | fail (expected) |" in text
    assert "| eager | positive control | pass |" in text
    assert "- no warm-up phase" in text
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_markdown(VERDICT, tmp_path / "out" / "gate.md")
    assert (tmp_path / "out" / "gate.md").read_text() == text
    assert summary.read_text() == "earlier step\n" + text + "\n"


def test_nothing_is_written_without_a_file_or_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(tmp_path)
    write_markdown(VERDICT, None)
    assert list(tmp_path.iterdir()) == []


# -- the command, end to end on crafted folders -------------------------------------------------------------------
def test_gate_command_exit_codes_and_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    streams = [*leaving_streams("eager", [None] * 5), *leaving_streams("lazy", [0.01] * 5)]
    folder = CraftedRun(rss={"eager": leak(MIB, start_s=10.0), "lazy": flat()}, streams=streams).write(tmp_path)
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    assert main(["gate", str(folder), "--junit", str(junit), "--markdown", str(md)]) == 1
    out = capsys.readouterr().out
    assert (
        "FAIL       eager leaked_streams: 5 upstream streams still open after the drain with no client (limit 0)" in out
    )
    assert out.rstrip().endswith("gate: FAIL (1 of 2 targets failed: eager; 0 warnings)")
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert len(cases) == 1 + 2 * 9  # the run's check, then 9 per target
    assert md.read_text().startswith("### stream-harness gate: FAIL")
    assert main(["gate", str(folder), "--expect-fail", "eager"]) == 0
    assert main(["gate", str(folder), "--target", "lazy"]) == 0
    assert main(["gate", str(tmp_path / "not-a-run")]) == 2
    assert "harness: error: RUN_DIR must be a run folder" in capsys.readouterr().err
