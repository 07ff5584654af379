"""The reference pages under docs/ against the code: in step now, and the check fails when they drift."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from types import ModuleType

import pytest

from tests.support import REPO


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and annotations look their module up
    spec.loader.exec_module(module)
    return module


generate = _generator()


def test_the_reference_pages_match_the_code() -> None:
    # In a process of its own: the plugin's flags import Locust, which patches the process with gevent.
    checked = subprocess.run(
        [sys.executable, "docs/generate.py", "--check"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr


def test_a_flag_added_without_regenerating_fails_the_check_naming_it() -> None:
    page = (REPO / "docs" / "flags.md").read_text()
    serve = generate.harness_commands()["serve"]  # a fresh parser: adding to it changes nothing else
    blocks = {"harness-serve": lambda old: generate.flags_table(serve)}
    assert generate.problems("docs/flags.md", page, generate.regenerate(page, blocks, "docs/flags.md")) == []
    serve.add_argument("--brand-new-flag", metavar="N", help="a flag someone just added")
    new = generate.regenerate(page, blocks, "docs/flags.md")
    assert generate.problems("docs/flags.md", page, new) == [
        "docs/flags.md: block 'harness-serve' is out of date (added --brand-new-flag): run python docs/generate.py"
    ]


def test_a_flag_without_help_cannot_be_documented() -> None:
    parser = argparse.ArgumentParser(prog="harness serve")
    parser.add_argument("--quiet-flag", type=int)
    with pytest.raises(ValueError, match="`--quiet-flag` of 'harness serve' has no help"):
        generate.flags_table(parser)


def test_a_help_that_misstates_its_default_is_refused() -> None:
    parser = argparse.ArgumentParser(prog="locust")
    parser.add_argument("--profile-nframe", type=int, default=0, metavar="N", help="frames (default: %(default)s)")
    parser.set_defaults(profile_nframe=1)  # what the plugin does: %(default)s follows it
    assert "(default: 1)" in generate.flags_table(parser)
    parser.add_argument("--stale", type=float, default=0.5, help="seconds (default: 1)")
    with pytest.raises(ValueError, match="`--stale` of 'locust': its help says default 1, the parser's default is 0.5"):
        generate.flags_table(parser)


def test_a_new_key_is_undocumented_until_its_meaning_is_written() -> None:
    old = generate.key_table([("t", (), "when")], "")
    new = generate.key_table([("t", (), ""), ("new_column", (), "")], old)
    assert "| `t` | when |" in new  # kept from the page
    wrapped = lambda body: f"<!-- BEGIN GENERATED table-x -->\n{body}<!-- END GENERATED table-x -->\n"  # noqa: E731
    assert generate.problems("docs/run-folder.md", wrapped(old), wrapped(new)) == [
        "docs/run-folder.md: block 'table-x' is out of date (added new_column): run python docs/generate.py",
        "docs/run-folder.md: table-x key `new_column` has no meaning: write it in the page (or a field docstring)",
    ]


def test_a_page_missing_a_block_is_named() -> None:
    with pytest.raises(ValueError, match="docs/gate.md has no block 'limits'"):
        generate.regenerate("# no blocks here\n", {"limits": lambda old: ""}, "docs/gate.md")


def test_a_page_naming_a_flag_no_parser_has_is_refused() -> None:
    text = "Pass `--gone-flag 3`.\n\n    locust -f x.py --headless --also-gone -- --the-programs-own-flag\n"
    assert generate.unknown_flags("README.md", text, {"--headless"}) == [
        "README.md: names --also-gone, which no parser has (renamed or gone?)",
        "README.md: names --gone-flag, which no parser has (renamed or gone?)",
    ]
