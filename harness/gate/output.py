"""The gate's verdict for people and CI systems: a line per check, JUnit XML, and a Markdown summary.

JUnit: one ``<testcase>`` per target and check (classname ``gate.<target>``, name the check). A failed check is a
``<failure>``; a warning passes with its sentence in ``<system-out>``. For a positive control a failed check is the
expected outcome and passes; an extra ``positive_control`` case fails when the control passed every check.
Markdown: a table of every check, written to the given file and appended to ``$GITHUB_STEP_SUMMARY`` when set.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.gate.verdict import GateVerdict, TargetVerdict
from harness.judge.check import Check
from harness.judge.table import check_line

__all__ = ["console_lines", "junit_xml", "markdown", "write_junit", "write_markdown"]

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def _label(result: Check, target: TargetVerdict | None) -> str:
    if target is not None and target.expect_fail and result.state == "fail":
        return "XFAIL"
    return result.state.upper()


def _checks(verdict: GateVerdict) -> list[tuple[Check, TargetVerdict | None]]:
    return [(check, None) for check in verdict.run_checks] + [
        (check, target) for target in verdict.targets for check in target.results
    ]


def console_lines(verdict: GateVerdict) -> list[str]:
    """One line per check ('FAIL       eager backlog_slow_readers: ...'), one per positive control, the verdict."""
    lines = [f"gate: judging {verdict.run_path}"]
    lines += [f"note       {note}" for note in verdict.notes]
    for check, target in _checks(verdict):
        lines.append(check_line(check, _label(check, target)))
    for target in verdict.targets:
        if target.expect_fail:
            control = "PASS" if target.ok else "FAIL"
            lines.append(f"{control:<10} {target.target} positive_control: {target.control_sentence}")
    lines.append(verdict.headline)
    return lines


def _case(result: Check, target: TargetVerdict | None) -> ET.Element:
    case = ET.Element("testcase", classname=f"gate.{result.target}", name=result.check, time="0")
    expected = target is not None and target.expect_fail
    if (result.state == "fail" and not expected) or result.blocks_judgement:
        kind = "fail" if result.state == "fail" else "not judgeable"
        failure = ET.SubElement(case, "failure", message=result.sentence, type=kind)
        failure.text = result.sentence
    else:
        prefix = {"pass": "", "warn": "WARNING: ", "fail": "expected failure (positive control): ", "not judged": ""}
        ET.SubElement(case, "system-out").text = prefix[result.state] + result.sentence
    return case


def _control_case(target: TargetVerdict) -> ET.Element:
    case = ET.Element("testcase", classname=f"gate.{target.target}", name="positive_control", time="0")
    if target.ok:
        ET.SubElement(case, "system-out").text = target.control_sentence
    else:
        failure = ET.SubElement(case, "failure", message=target.control_sentence, type="fail")
        failure.text = target.control_sentence
    return case


def junit_xml(verdict: GateVerdict) -> str:
    """The verdict as a JUnit XML document: the run's checks, then each target's and its positive control."""
    cases = [_case(result, None) for result in verdict.run_checks]
    for target in verdict.targets:
        cases += [_case(result, target) for result in target.results]
        if target.expect_fail:
            cases.append(_control_case(target))
    failures = sum(case.find("failure") is not None for case in cases)
    suites = ET.Element("testsuites", name="stream-harness gate", tests=str(len(cases)), failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="stream-harness gate",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    if verdict.run_path:
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="run_dir", value=verdict.run_path)
    suite.extend(cases)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(verdict: GateVerdict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(verdict), encoding="utf-8")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_MARK = {
    "PASS": "pass",
    "WARN": "**warn**",
    "FAIL": "**FAIL**",
    "XFAIL": "fail (expected)",
    "NOT JUDGED": "not judged",
}


def markdown(verdict: GateVerdict) -> str:
    """A Markdown summary: the verdict, then a table of every check, then the notes."""
    lines = [
        f"### stream-harness {verdict.headline.split(' (')[0]}",
        "",
        f"Run folder: `{verdict.run_path}`",
        "",
        "| target | check | state | figure and limit |",
        "| --- | --- | --- | --- |",
    ]
    for result, owner in _checks(verdict):
        label = _MARK[_label(result, owner)]
        lines.append(f"| {result.target} | {result.check} | {label} | {_cell(result.sentence)} |")
    for target in verdict.targets:
        if target.expect_fail:
            label = "pass" if target.ok else "**FAIL**"
            lines.append(f"| {target.target} | positive control | {label} | {_cell(target.control_sentence)} |")
    lines += ["", verdict.headline]
    if verdict.notes:
        lines += ["", *[f"- {_cell(note)}" for note in verdict.notes]]
    return "\n".join(lines) + "\n"


def write_markdown(verdict: GateVerdict, path: Path | None) -> None:
    """Write the summary to ``path`` (if given) and append it to $GITHUB_STEP_SUMMARY (if set)."""
    text = markdown(verdict)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    step_summary = os.environ.get(STEP_SUMMARY_ENV)
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as file:
            file.write(text + "\n")
