"""The public API is what it means to be."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import harness
from harness import errors

REPO = Path(__file__).parents[1]


def test_public_names_are_sorted() -> None:
    assert harness.__all__ == sorted(harness.__all__)


def test_scenario_names_load_lazily_and_register_the_plugin() -> None:
    # In a child: loading the scenario names imports Locust, whose gevent monkey patching must not reach pytest.
    code = (
        "import sys, harness\n"
        "assert 'locust' not in sys.modules, 'importing harness alone imported Locust'\n"
        "for name in harness.__all__:\n"
        "    assert getattr(harness, name) is not None, name\n"
        "from harness.load.streaming_user import StreamingUser\n"
        "from harness.load.phases import Phase, PhasedShape\n"
        "assert harness.StreamingUser is StreamingUser and harness.PhasedShape is PhasedShape\n"
        "assert 'harness.plugin.hooks' in sys.modules, 'the plugin was not registered'\n"
        "try:\n"
        "    harness.NoSuchName\n"
        "except AttributeError as error:\n"
        "    assert 'NoSuchName' in str(error)\n"
        "else:\n"
        "    raise AssertionError('unknown names must raise AttributeError')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_one_exception_tree_with_exit_codes() -> None:
    for name in errors.__all__:
        error_type = getattr(errors, name)
        assert issubclass(error_type, errors.HarnessError)
    assert errors.UsageError("x").exit_code == 2
    assert errors.RunFolderError("x").exit_code == 2
    assert errors.TargetStartError("x").exit_code == 1
    assert errors.HarnessError("x", exit_code=7).exit_code == 7
