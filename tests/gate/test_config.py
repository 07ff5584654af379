"""The gate's limits: defaults, [tool.harness.gate] in pyproject.toml, flags over both, and one-line refusals."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.gate.config import combine, load_pyproject, options_from_locust, settings_from_table
from harness.gate.flags import add_locust_gate_arguments
from harness.gate.run import judge_locust_run
from harness.gate.values import parse_tolerance
from harness.judge.limits import DEFAULT_TOLERANCES, Limits, Tolerance
from tests.runfolders import MIB, CraftedRun, flat, leak, leaving_streams


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A crafted run: eager keeps its upstream streams; lazy cancels at once."""
    monkeypatch.chdir(tmp_path)  # no pyproject.toml here unless a test writes one
    streams = [*leaving_streams("eager", [None] * 5), *leaving_streams("lazy", [0.01] * 5)]
    run = CraftedRun(rss={"eager": leak(MIB, start_s=10.0), "lazy": flat()}, streams=streams)
    return run.write(tmp_path / "runs")


def _pyproject(folder: Path, body: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(f"[project]\nname = 'x'\n\n[tool.harness.gate]\n{body}\n")
    return path


def test_defaults_are_the_documented_ones() -> None:
    limits = Limits()
    assert (limits.backlog_warn_bytes, limits.backlog_bytes, limits.backlog_share) == (4 * MIB, 16 * MIB, 0.25)
    assert (limits.per_request_bytes, limits.per_request_min_bytes) == (1 * MIB, 4 * MIB)
    assert (limits.churn_kept_per_1000, limits.churn_rounds) == (100.0, 4)
    assert (limits.stalled_hold_s, limits.stalled_state) == (10.0, "warn")
    assert limits.leaked_streams == 0
    assert (limits.cancel_p99_warn_ms, limits.cancel_p99_ms) == (500.0, 2000.0)
    assert (limits.after_leave_warn_share, limits.after_leave_share) == (0.10, 0.20)
    assert limits.tolerances == DEFAULT_TOLERANCES


def test_pyproject_table_sets_limits_targets_controls_and_tolerances(tmp_path: Path) -> None:
    path = _pyproject(
        tmp_path,
        'backlog = "32MiB"\nbacklog_share = "10%"\nper_request = "128KiB"\ncancel_p99 = "1.5s"\n'
        'leaked_streams = 1\nafter_leave_share = 0.3\nchurn_kept = 2.5\nstalled_hold = "5s"\n'
        'stalled_state = "fail"\ntargets = ["lazy", "eager"]\nexpect_fail = ["eager"]\n'
        'baseline = "reports/baseline.json"\n[tool.harness.gate.tolerance]\nbacklog_bytes = "10%+2MiB"\n',
    )
    settings = load_pyproject(path, required=True)
    assert settings.limits == {
        "backlog_bytes": 32 * MIB,
        "backlog_share": 0.1,
        "per_request_bytes": 128 * 1024,
        "cancel_p99_ms": 1500.0,
        "leaked_streams": 1,
        "after_leave_share": 0.3,
        "churn_kept_per_1000": 2.5,
        "stalled_hold_s": 5.0,
        "stalled_state": "fail",
    }
    assert settings.targets == ("lazy", "eager")
    assert settings.expect_fail == ("eager",)
    assert settings.baseline == tmp_path / "reports/baseline.json"
    assert settings.tolerances == (Tolerance("backlog_bytes", 0.1, 2 * MIB),)


def test_a_missing_pyproject_is_fine_unless_named(tmp_path: Path) -> None:
    assert load_pyproject(tmp_path / "pyproject.toml", required=False).limits == {}
    with pytest.raises(UsageError, match="does not exist"):
        load_pyproject(tmp_path / "pyproject.toml", required=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('backlgo = "16MiB"', "[tool.harness.gate] has an unknown key backlgo = '16MiB'"),
        ('memory_growth = "16MiB"', "[tool.harness.gate] memory_growth = '16MiB' is no longer a key: memory is"),
        ('backlog = "-4MiB"', "[tool.harness.gate] backlog must not be negative, but got '-4MiB'"),
        ('backlog = "16"', "[tool.harness.gate] backlog must be a size with a unit such as 16MiB"),
        ("backlog = 16777216", "[tool.harness.gate] backlog must be a string with a unit"),
        ('backlog_warn = "4 parsecs"', "[tool.harness.gate] backlog_warn must be a byte count"),
        ("churn_kept = -2", "[tool.harness.gate] churn_kept must be a number >= 0 such as 10, but got -2"),
        ('stalled_state = "error"', "[tool.harness.gate] stalled_state must be 'warn' or 'fail', but got 'error'"),
        ('cancel_p99 = "2000"', "[tool.harness.gate] cancel_p99 must be a duration with a unit"),
        ("after_leave_share = 1.5", "[tool.harness.gate] after_leave_share must be a share between 0 and 1"),
        ("leaked_streams = -1", "[tool.harness.gate] leaked_streams must be a whole number >= 0, but got -1"),
        ("targets = 3", "[tool.harness.gate] targets must be a list of target names"),
        ('tolerance = { rss = "10%" }', "[tool.harness.gate] tolerance names an unknown figure in rss = '10%'"),
    ],
)
def test_bad_config_values_name_key_and_value(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        load_pyproject(_pyproject(tmp_path, body), required=True)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_broken_toml_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.harness.gate\n")
    with pytest.raises(UsageError, match="is not readable TOML"):
        load_pyproject(path, required=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backlog_bytes:10%", Tolerance("backlog_bytes", 0.1, 0.0)),
        ("backlog_bytes:4MiB", Tolerance("backlog_bytes", 0.0, 4 * MIB)),
        ("backlog_bytes:10%+4MiB", Tolerance("backlog_bytes", 0.1, 4 * MIB)),
        ("kept_per_1000_connections:5", Tolerance("kept_per_1000_connections", 0.0, 5.0)),
        ("cancel_latency_p99_ms:150%+100ms", Tolerance("cancel_latency_p99_ms", 1.5, 100.0)),
        ("orphans_at_end:0", Tolerance("orphans_at_end", 0.0, 0.0)),
        ("tokens_after_leave_share:0.02", Tolerance("tokens_after_leave_share", 0.0, 0.02)),
    ],
)
def test_compact_tolerance_syntax(text: str, expected: Tolerance) -> None:
    assert parse_tolerance(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backlog_bytes", "--tolerance must read METRIC:LIMIT"),
        ("rss:10%", "--tolerance names an unknown figure in 'rss:10%'"),
        ("backlog_bytes:4", "must be a size with a unit"),
        ("backlog_bytes:-10%", "must give a percentage >= 0"),
    ],
)
def test_bad_tolerances_are_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_tolerance(text)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"cancel_p99_warn": "3s"}, r"cancel_p99_warn \(3000\) must not be above cancel_p99 \(2000\)"),
        ({"backlog_warn": "32MiB"}, r"backlog_warn \(3.35544e\+07\) must not be above backlog"),
        ({"churn_rounds": 1}, r"churn_rounds must be at least 2, but got 1"),
    ],
)
def test_limits_that_make_a_check_impossible_are_refused(table: dict[str, object], message: str) -> None:
    settings = settings_from_table(table, base_dir=Path())
    with pytest.raises(UsageError, match="^limits: " + message):
        combine([settings], "limits")


# -- through the command line --------------------------------------------------------------------------------------
def test_flags_override_the_pyproject_table(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pyproject(Path.cwd(), 'leaked_streams = 9\ncancel_p99 = "1h"\nafter_leave_share = 1.0\nexpect_fail = ["eager"]')
    # from the table alone eager's 5 streams left open pass the leaked-streams check (it fails on latency)
    assert main(["gate", str(run_dir), "--target", "eager"]) == 0
    out = capsys.readouterr().out
    assert (
        "PASS       eager leaked_streams: 5 upstream streams still open after the drain with no client (limit 9)" in out
    )
    assert main(["gate", str(run_dir), "--target", "eager", "--leaked-streams", "0"]) == 0
    assert "XFAIL      eager leaked_streams: 5 upstream streams" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backlog", "16"], "harness: error: --backlog must be a size with a unit such as 16MiB"),
        (["--backlog=-1MiB"], "harness: error: --backlog must not be negative, but got '-1MiB'"),
        (["--cancel-p99-warn", "5s"], "harness: error: limits from pyproject.toml and flags: cancel_p99_warn (5000)"),
        (["--cancel-p99", "2000"], "harness: error: --cancel-p99 must be a duration with a unit such as 500ms"),
        (
            ["--cancel-p99", "fast"],
            "harness: error: --cancel-p99 must be a duration such as 2.5, 250ms or 1m, but got 'fast'",
        ),
        (["--tolerance", "rss:1%"], "harness: error: --tolerance names an unknown figure in 'rss:1%'"),
        (["--config", "nowhere.toml"], "harness: error: --config must name a readable pyproject.toml"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    run_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["gate", str(run_dir), *argv])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_bad_pyproject_exits_2_with_one_line(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pyproject(Path.cwd(), 'per_request = "fast"')
    with pytest.raises(SystemExit) as caught:
        main(["gate", str(run_dir)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "harness: error: [tool.harness.gate] per_request must be a byte count such as 4096, 64KiB or 2MB, "
        "but got 'fast'"
    )
    assert err.count("\n") == 1


# -- from Locust's parsed options (the plugin's --gate flags) -----------------------------------------------------
def _locust_options(**values: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_locust_gate_arguments(parser)
    options = parser.parse_args([])
    for name, value in values.items():
        setattr(options, name, value)
    return options


def test_locust_gate_flags_reach_the_options(tmp_path: Path) -> None:
    config = _pyproject(tmp_path, 'cancel_p99 = "1s"\ntargets = ["lazy"]')
    options = options_from_locust(_locust_options(gate=True, gate_config=str(config), gate_expect_fail="eager,x"))
    assert options.limits.cancel_p99_ms == 1000.0
    assert options.targets == ("lazy",)
    assert options.expect_fail == ("eager", "x")
    assert options.junit is None


def test_judging_a_locust_run_sets_its_exit_code(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environment = SimpleNamespace(parsed_options=_locust_options(gate=True), process_exit_code=None)
    assert judge_locust_run(environment, run_dir) == 1
    assert environment.process_exit_code == 1
    assert "FAIL       eager leaked_streams: " in capsys.readouterr().out
    environment = SimpleNamespace(
        parsed_options=_locust_options(gate=True, gate_expect_fail="eager"), process_exit_code=None
    )
    assert judge_locust_run(environment, run_dir) == 0
    assert environment.process_exit_code is None  # a passing gate leaves Locust's own decision alone
    _pyproject(Path.cwd(), "leaked_streams = -1")
    assert judge_locust_run(environment, run_dir) == 2
    assert environment.process_exit_code == 2
    err = capsys.readouterr().err
    assert err == "harness gate: error: [tool.harness.gate] leaked_streams must be a whole number >= 0, but got -1\n"
