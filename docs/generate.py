"""The reference pages' tables, generated from the code so they cannot drift.

    python docs/generate.py           # rewrite every generated block under docs/
    python docs/generate.py --check   # exit 1 naming each block out of date, a key nobody described, or a flag
                                      # the README or a page names that no parser has

A page is hand-written Markdown with generated blocks between ``<!-- BEGIN GENERATED name -->`` and
``<!-- END GENERATED name -->``. Two kinds of block:

- flag tables, rendered whole from the argument parsers (the flags' own ``help`` is the documentation: a flag
  without one is refused);
- key tables (run-folder columns, summary.json keys, limits): the keys and their order come from the code
  (``harness.runfolder.TABLES``, the figures' dataclasses, the limits dataclass), the meaning from the field's
  docstring where it has one, else from the page itself, where it is kept across regenerations. A new key gets
  ``**undocumented**``, which ``--check`` refuses until someone writes what it means.

The tables are rendered by docs/reference_tables.py. Both live outside ``harness/`` and ``targets/`` because they
read both (which never import each other). The plugin's flags import Locust, which patches the process with gevent:
run this as a script, not inside a test process.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from reference_tables import (  # noqa: E402 - after the path it is found on
    UNDOCUMENTED,
    KeyRow,
    dataclass_keys,
    described,
    flags_table,
    harness_commands,
    key_table,
    limit_default,
    locust_parser,
    parser_of,
    table_keys,
)

_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED (?P=name) -->)", re.S
)


# -- the blocks ------------------------------------------------------------------------------------------------------


def _run_folder_block(table: str) -> Callable[[str], str]:
    def render(old: str) -> str:
        from harness.runfolder import TABLES

        return key_table([(column, (), "") for column in TABLES[table]], old, ("column", "meaning"))

    return render


def _summary_block(section: str) -> Callable[[str], str]:
    def render(old: str) -> str:
        from harness.analyse.cancellation import CancellationFigures
        from harness.analyse.clients import ClientFigures, Percentiles
        from harness.analyse.memory import MemoryFigures
        from harness.analyse.upstream import UpstreamFigures
        from harness.judge.check import Check

        sections: dict[str, list[KeyRow]] = {
            "memory": dataclass_keys(MemoryFigures),
            "upstream": dataclass_keys(UpstreamFigures),
            "cancellation": dataclass_keys(CancellationFigures),
            "clients": dataclass_keys(ClientFigures),
            "percentiles": dataclass_keys(Percentiles),
            "checks": dataclass_keys(Check),
        }
        return key_table(sections[section], old)

    return render


def _limits_block(old: str) -> str:
    from harness.judge.limits import Limits as GateLimits

    defaults = GateLimits()
    rows = [
        (key, (limit_default(key, getattr(defaults, key)),), meaning) for key, _, meaning in dataclass_keys(GateLimits)
    ]
    return key_table(rows, old, ("limit", "default", "meaning"))


def _command_block(command: str) -> Callable[[str], str]:
    return lambda old: flags_table(harness_commands()[command])


def _server_block(module: str, *same: str) -> Callable[[str], str]:
    """The flags of ``python -m <module>``; ValueError if a server in ``same`` (documented with it) differs."""

    def render(old: str) -> str:
        import importlib

        table = flags_table(parser_of(importlib.import_module(module).main))
        for other in same:
            if flags_table(parser_of(importlib.import_module(other).main)) != table:
                raise ValueError(f"{other}'s flags differ from {module}'s: give it a block of its own in docs/stack.md")
        return table

    return render


PAGES: dict[str, dict[str, Callable[[str], str]]] = {
    "docs/flags.md": {
        "locust": lambda old: flags_table(locust_parser(), web_ui=True),
        **{
            f"harness-{name}": _command_block(name) for name in ("serve", "report", "compare", "gate", "probe", "agent")
        },
    },
    "docs/stack.md": {
        "server-upstream": _server_block("targets.upstream"),
        "server-relay": _server_block("targets.eager", "targets.lazy", "targets.bounded"),
    },
    "docs/run-folder.md": {
        f"table-{table}": _run_folder_block(table)
        for table in ("events", "clients", "samples", "connections", "stats", "upstream_streams")
    },
    "docs/summary.md": {
        f"summary-{section}": _summary_block(section)
        for section in ("checks", "memory", "upstream", "cancellation", "clients", "percentiles")
    },
    "docs/gate.md": {"limits": _limits_block},
}
"""page -> block name -> render(the block's current body) -> its new body."""


def regenerate(text: str, blocks: dict[str, Callable[[str], str]], page: str) -> str:
    """``text`` with every block rendered anew; ValueError naming a block the page lacks."""
    seen = {match["name"] for match in _BLOCK.finditer(text)}
    missing = sorted(set(blocks) - seen)
    if missing:
        raise ValueError(f"{page} has no block {missing[0]!r}: add <!-- BEGIN GENERATED {missing[0]} --> ... END")
    return _BLOCK.sub(
        lambda m: m[1] + (blocks[m["name"]](m["body"]) if m["name"] in blocks else m["body"]) + m[4], text
    )


def problems(page: str, old: str, new: str) -> list[str]:
    """What ``--check`` says of one page: blocks out of date (with the flags or keys that differ), undocumented keys."""
    found = []
    old_blocks = {m["name"]: m["body"] for m in _BLOCK.finditer(old)}
    for match in _BLOCK.finditer(new):
        name, body = match["name"], match["body"]
        before = old_blocks.get(name, "")
        if body != before:
            added = sorted(set(table_keys(body)) - set(table_keys(before)))
            removed = sorted(set(table_keys(before)) - set(table_keys(body)))
            detail = "; ".join(
                part
                for part in (
                    f"added {', '.join(added)}" if added else "",
                    f"gone {', '.join(removed)}" if removed else "",
                )
                if part
            )
            found.append(f"{page}: block {name!r} is out of date ({detail or 'wording'}): run python docs/generate.py")
        for key, meaning in described(body).items():
            if meaning == UNDOCUMENTED:
                found.append(f"{page}: {name} key `{key}` has no meaning: write it in the page (or a field docstring)")
    return found


_INLINE_FLAG = re.compile(r"`(--[a-z][a-z0-9-]*)")
_COMMAND_LINE = re.compile(r"(?m)^\s*(?:locust|harness|python -m (?:harness|targets)\S*) .*$")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def known_flags() -> set[str]:
    """Every flag a reader of these pages can pass: the plugin's, harness's, the servers' and Locust's own."""
    import importlib

    from locust.argument_parser import get_parser

    parsers: list[argparse.ArgumentParser] = [locust_parser(), get_parser(), *harness_commands().values()]
    parsers += [parser_of(importlib.import_module(module).main) for module in ("targets.upstream", "targets.eager")]
    return {flag for parser in parsers for action in parser._actions for flag in action.option_strings}


def unknown_flags(page: str, text: str, known: set[str]) -> list[str]:
    """Flags a page names (in `code`, or on a locust/harness command line before a bare --) that no parser has."""
    named = set(_INLINE_FLAG.findall(text))
    for line in _COMMAND_LINE.findall(text):
        named.update(_FLAG.findall(line.split(" -- ")[0]))
    return [f"{page}: names {flag}, which no parser has (renamed or gone?)" for flag in sorted(named - known)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/generate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is out of date")
    args = parser.parse_args(argv)
    found = []
    for page, blocks in PAGES.items():
        path = REPO / page
        old = path.read_text()
        new = regenerate(old, blocks, page)
        if args.check:
            found += problems(page, old, new)
        elif new != old:
            path.write_text(new)
            sys.stdout.write(f"wrote {page}\n")
        if not args.check:
            found += [p for p in problems(page, new, new) if "no meaning" in p]
    if args.check:
        known = known_flags()
        for page in [
            "README.md",
            "CHANGELOG.md",
            *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
        ]:
            found += unknown_flags(page, (REPO / page).read_text(), known)
    for problem in found:
        sys.stderr.write(problem + "\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
