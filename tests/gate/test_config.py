"""The gate's limits: defaults, [tool.harness.gate] in pyproject.toml, flags over both, and one-line refusals."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.gate.checks import judge_locust_run
from harness.gate.config import (
    DEFAULT_TOLERANCES,
    GateLimits,
    Tolerance,
    add_locust_gate_arguments,
    load_pyproject,
    options_from_locust,
    parse_tolerance,
    settings_from_table,
)
from tests.runfolders import MIB, CraftedRun, flat, leak, leaving_streams


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A crafted run: eager leaks 1 MiB/s and keeps its upstream streams; lazy is flat and cancels at once."""
    monkeypatch.chdir(tmp_path)  # no pyproject.toml here unless a test writes one
    streams = [*leaving_streams("eager", [None] * 5), *leaving_streams("lazy", [0.01] * 5)]
    run = CraftedRun(rss={"eager": leak(MIB, start_s=10.0), "lazy": flat()}, streams=streams)
    return run.write(tmp_path / "runs")


def _pyproject(folder: Path, body: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(f"[project]\nname = 'x'\n\n[tool.harness.gate]\n{body}\n")
    return path


def test_defaults_are_the_documented_ones() -> None:
    limits = GateLimits()
    assert limits.memory_growth_bytes == 16 * MIB
    assert limits.memory_growth_share == 0.25
    assert limits.memory_rate_bytes_per_s == 64 * 1024
    assert limits.leaked_streams == 0
    assert (limits.cancel_p99_warn_ms, limits.cancel_p99_ms) == (500.0, 2000.0)
    assert (limits.after_leave_warn_share, limits.after_leave_share) == (0.05, 0.20)
    assert limits.tolerances == DEFAULT_TOLERANCES


def test_pyproject_table_sets_limits_targets_controls_and_tolerances(tmp_path: Path) -> None:
    path = _pyproject(
        tmp_path,
        'memory_growth = "32MiB"\nmemory_growth_share = "10%"\nmemory_rate = "128KiB/s"\ncancel_p99 = "1.5s"\n'
        'leaked_streams = 1\nafter_leave_share = 0.3\ntargets = ["lazy", "eager"]\nexpect_fail = ["eager"]\n'
        'baseline = "reports/baseline.json"\n[tool.harness.gate.tolerance]\nretained_growth_bytes = "10%+2MiB"\n',
    )
    settings = load_pyproject(path, required=True)
    assert settings.limits == {
        "memory_growth_bytes": 32 * MIB,
        "memory_growth_share": 0.1,
        "memory_rate_bytes_per_s": 128 * 1024,
        "cancel_p99_ms": 1500.0,
        "leaked_streams": 1,
        "after_leave_share": 0.3,
    }
    assert settings.targets == ("lazy", "eager")
    assert settings.expect_fail == ("eager",)
    assert settings.baseline == tmp_path / "reports/baseline.json"
    assert settings.tolerances == (Tolerance("retained_growth_bytes", 0.1, 2 * MIB),)


def test_a_missing_pyproject_is_fine_unless_named(tmp_path: Path) -> None:
    assert load_pyproject(tmp_path / "pyproject.toml", required=False).limits == {}
    with pytest.raises(UsageError, match="does not exist"):
        load_pyproject(tmp_path / "pyproject.toml", required=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('memory_grwoth = "16MiB"', "[tool.harness.gate] has an unknown key memory_grwoth = '16MiB'"),
        ('memory_growth = "-4MiB"', "[tool.harness.gate] memory_growth must not be negative, but got '-4MiB'"),
        ('memory_growth = "16"', "[tool.harness.gate] memory_growth must be a size with a unit such as 16MiB"),
        ("memory_growth = 16777216", "[tool.harness.gate] memory_growth must be a string with a unit"),
        ('memory_min = "4 parsecs"', "[tool.harness.gate] memory_min must be a byte count"),
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
        ("retained_growth_bytes:10%", Tolerance("retained_growth_bytes", 0.1, 0.0)),
        ("retained_growth_bytes:4MiB", Tolerance("retained_growth_bytes", 0.0, 4 * MIB)),
        ("retained_growth_bytes:10%+4MiB", Tolerance("retained_growth_bytes", 0.1, 4 * MIB)),
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
        ("retained_growth_bytes", "--tolerance must read METRIC:LIMIT"),
        ("rss:10%", "--tolerance names an unknown figure in 'rss:10%'"),
        ("retained_growth_bytes:4", "must be a size with a unit"),
        ("retained_growth_bytes:-10%", "must give a percentage >= 0"),
    ],
)
def test_bad_tolerances_are_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_tolerance(text)


def test_warn_limit_above_fail_limit_is_refused() -> None:
    settings = settings_from_table({"cancel_p99_warn": "3s"}, base_dir=Path())
    assert settings.limits == {"cancel_p99_warn_ms": 3000.0}
    from harness.gate.config import _combine

    with pytest.raises(UsageError, match=r"cancel_p99_warn \(3000\) must not be above cancel_p99 \(2000\)"):
        _combine([settings], "limits")


# -- through the command line --------------------------------------------------------------------------------------
def test_flags_override_the_pyproject_table(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pyproject(Path.cwd(), 'memory_growth = "1GiB"\nmemory_growth_share = "90%"\nexpect_fail = ["eager"]')
    # from the table alone eager's 40 MiB passes the memory check, yet it fails the stream checks (expected)
    assert main(["gate", str(run_dir), "--target", "eager"]) == 0
    out = capsys.readouterr().out
    assert "WARN  eager: RSS grew" in out  # steady, so above the noise floor it still warns
    assert "under the limit 1.0 GiB" in out
    assert (
        main(["gate", str(run_dir), "--target", "eager", "--memory-growth", "8MiB", "--memory-growth-share", "0"]) == 0
    )
    assert "XFAIL eager: RSS grew" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--memory-growth", "16"], "harness: error: --memory-growth must be a size with a unit such as 16MiB"),
        (["--memory-growth=-1MiB"], "harness: error: --memory-growth must not be negative, but got '-1MiB'"),
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
    _pyproject(Path.cwd(), 'memory_rate = "fast"')
    with pytest.raises(SystemExit) as caught:
        main(["gate", str(run_dir)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "harness: error: [tool.harness.gate] memory_rate must be a byte count such as 4096, 64KiB or 2MB, "
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
    assert "FAIL  eager: " in capsys.readouterr().out
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
