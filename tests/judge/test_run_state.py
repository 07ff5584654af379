"""Only finished runs pass: interrupted, killed, drainless runs, dead targets and targets that delivered no token."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.cli import main
from harness.gate.config import GateOptions
from harness.gate.run import gate
from harness.judge.summary import SUMMARY
from tests.runfolders import CraftedRun, Stream, flat, leaving_streams

GOOD = CraftedRun(
    rss={"upstream": flat(), "lazy": flat()},
    roles={"upstream": "upstream"},
    streams=leaving_streams("lazy", [0.01] * 10),
)


def _blocking(folder: Path) -> list[str]:
    verdict = gate(folder, GateOptions())
    assert verdict.exit_code == 3, [f"{c.label}: {c.sentence}" for c in verdict.results]
    assert verdict.headline.startswith("gate: NOT JUDGEABLE (exit 3: ")
    return [f"{check.label}: {check.sentence}" for check in verdict.blocking]


def test_a_finished_run_passes(tmp_path: Path) -> None:
    verdict = gate(GOOD.write(tmp_path), GateOptions())
    assert verdict.exit_code == 0, [f"{c.label}: {c.sentence}" for c in verdict.results]
    (run,) = [check for check in verdict.run_checks if check.check == "run_complete"]
    assert run.sentence == "the run finished all 3 phases, drain included, in 50 s"


def test_an_interrupted_run_is_not_judgeable(tmp_path: Path) -> None:
    (line,) = _blocking(replace(GOOD, status="interrupted").write(tmp_path))
    assert line == (
        "run run_complete: not judged: the run ended as 'interrupted', not 'complete': it was stopped before its "
        "phases ended"
    )


def test_a_killed_run_is_not_judgeable(tmp_path: Path) -> None:
    (line,) = _blocking(replace(GOOD, status="running").write(tmp_path))
    assert "meta.json still says 'running': the run was killed before it could finish" in line


def test_a_run_without_a_drain_is_not_judgeable(tmp_path: Path) -> None:
    phases = (("warm-up", 0.0, 10.0), ("load", 10.0, 50.0))
    (line,) = _blocking(replace(GOOD, phases=phases).write(tmp_path))
    assert "the run has no drain phase" in line


def test_a_target_that_died_fails_and_says_when(tmp_path: Path) -> None:
    died = replace(GOOD, events=[(20.5, "target_died", "lazy", "lazy exited with code -9 (SIGKILL)")])
    verdict = gate(died.write(tmp_path), GateOptions())
    assert verdict.exit_code in (1, 3)
    assert not verdict.passed
    (alive,) = [c for c in verdict.results if c.check == "target_alive" and c.target == "lazy"]
    assert alive.state == "fail"
    assert alive.sentence == "its process died at 20.5 s, before the run ended: lazy exited with code -9 (SIGKILL)"


def test_a_target_that_delivered_no_token_is_not_judgeable_and_judges_nothing_else(tmp_path: Path) -> None:
    broken = [
        Stream(f"b-{i}", "lazy", 12.0 + i, 12.5 + i, 12.5 + i, tokens_read=0, tokens_sent=0, outcome="broken")
        for i in range(5)
    ]
    (line,) = _blocking(replace(GOOD, streams=broken).write(tmp_path))
    assert line.startswith("lazy tokens_delivered: not judged: no client received a token: 0 tokens over 5 streams")
    verdict = gate(replace(GOOD, streams=broken).write(tmp_path / "again"), GateOptions())
    others = [c for c in verdict.results if c.target == "lazy" and c.check not in ("target_alive", "tokens_delivered")]
    assert {c.sentence for c in others} == {"not judged: no client received a token from this target"}


def test_the_command_exits_3_for_a_run_it_cannot_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = replace(GOOD, status="interrupted").write(tmp_path)
    assert main(["gate", str(folder)]) == 3
    out = capsys.readouterr().out
    assert "NOT JUDGED run run_complete: not judged: the run ended as 'interrupted'" in out
    assert out.rstrip().endswith("gate: NOT JUDGEABLE (exit 3: run run_complete)")


def test_corrupt_meta_json_or_a_truncated_table_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = GOOD.write(tmp_path / "meta")
    (folder / "meta.json").write_text('{"status": "compl')
    assert main(["gate", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "meta.json" in err
    assert not (folder / SUMMARY).exists()

    folder = GOOD.write(tmp_path / "table")
    clients = folder / "clients.csv"
    clients.write_text(clients.read_text()[:-40])  # cut mid-row, in a run that says it completed
    assert main(["gate", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "clients.csv" in err
    assert "truncated" in err
    assert not (folder / SUMMARY).exists()
