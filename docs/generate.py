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

It lives outside ``harness/`` and ``targets/`` because it reads both (and they never import each other). The
plugin's flags import Locust, which patches the process with gevent: run it as a script, not inside a test process.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

UNDOCUMENTED = "**undocumented**"
_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED (?P=name) -->)", re.S
)

Row = tuple[str, str]


# -- flags -----------------------------------------------------------------------------------------------------------


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def parser_of(main: Callable[[list[str]], object]) -> argparse.ArgumentParser:
    """The parser a ``main(argv)`` builds, caught as it parses (so servers need not export it)."""
    original = argparse.ArgumentParser.parse_args

    def capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _Captured(self)

    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    try:
        main([])
    except _Captured as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    raise RuntimeError(f"{main.__module__}.main returned without parsing its arguments")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _flag(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{names}`"
    value = action.metavar or ("|".join(map(str, action.choices)) if action.choices else "")
    return f"`{names} {value}`" if value else f"`{names}`"


_SAID_DEFAULT = re.compile(r"\(default: ([^)]*)\)")


def default_mismatch(action: argparse.Action, meaning: str) -> str | None:
    """When the help says ``(default: N)`` and the parser's default is another number, what differs.

    Only numbers are compared: "250ms" for 0.25 is a unit the parser converted, not a disagreement.
    """
    said = _SAID_DEFAULT.search(meaning)
    default = action.default
    if said is None or isinstance(default, bool) or not isinstance(default, int | float):
        return None
    try:
        stated = float(said[1])
    except ValueError:
        return None
    return None if stated == float(default) else f"its help says default {said[1]}, the parser's default is {default!r}"


def _listed(action: argparse.Action, skip: set[str]) -> bool:
    excluded = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    return not isinstance(action, excluded) and action.dest not in skip and action.help != argparse.SUPPRESS


def flag_rows(parser: argparse.ArgumentParser, *, skip: Iterable[str] = ()) -> list[tuple[argparse.Action, Row]]:
    """(action, (flag, meaning)) per argument; ValueError naming a flag without help, or whose help misstates its
    default."""
    rows = []
    for action in parser._actions:
        if not _listed(action, set(skip)):
            continue
        if not action.help:
            raise ValueError(f"{_flag(action)} of {parser.prog!r} has no help: say what it does in add_argument")
        meaning = action.help % {**vars(action), "prog": parser.prog} if "%" in action.help else action.help
        mismatch = default_mismatch(action, meaning)
        if mismatch:
            raise ValueError(f"{_flag(action)} of {parser.prog!r}: {mismatch}")
        rows.append((action, (_cell(_flag(action)), _cell(meaning + (" (required)" if action.required else "")))))
    return rows


def flags_table(parser: argparse.ArgumentParser, *, web_ui: bool = False, skip: Iterable[str] = ()) -> str:
    """A Markdown table of ``parser``'s flags; with ``web_ui``, a column saying which show in Locust's web UI."""
    rows = flag_rows(parser, skip=skip)
    if web_ui:
        lines = ["| flag | web UI | meaning |", "| --- | --- | --- |"]
        for action, (flag, meaning) in rows:
            mark = "yes" if getattr(action, "include_in_web_ui", False) else ""
            lines.append(f"| {flag} | {mark} | {meaning} |")
    else:
        lines = ["| flag | meaning |", "| --- | --- |"]
        lines += [f"| {flag} | {meaning} |" for _, (flag, meaning) in rows]
    return "\n".join(lines) + "\n"


def locust_parser() -> argparse.ArgumentParser:
    """Locust's parser holding only the plugin's flags (Locust's own: ``locust --help``)."""
    from locust.argument_parser import LocustArgumentParser

    from harness.plugin.flags import add_arguments

    parser = LocustArgumentParser(prog="locust", add_help=False)
    add_arguments(parser)
    return parser


def harness_commands() -> dict[str, argparse.ArgumentParser]:
    from harness.cli import build_parser

    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


# -- keys ------------------------------------------------------------------------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a dataclass's fields (``x: int`` then ``\"\"\"What x is.\"\"\"``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def described(body: str) -> dict[str, str]:
    """key -> meaning, read back from a key table's rows (``| `key` | ... | meaning |``)."""
    found = {}
    for line in body.splitlines():
        cells = [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(line.strip().strip("|"))]
        if len(cells) >= 2 and cells[0].startswith("`") and cells[0].endswith("`"):
            found[cells[0].strip("`")] = cells[-1]
    return found


KeyRow = tuple[str, Sequence[str], str]
"""(key, cells generated from the code, meaning from the code or "")."""


def key_table(rows: Sequence[KeyRow], old_body: str, header: Sequence[str] = ("key", "meaning")) -> str:
    """A table of keys in the code's order; a meaning the code does not give is kept from the page's old body."""
    kept = described(old_body)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for key, cells, meaning in rows:
        text = meaning or kept.get(key, "") or UNDOCUMENTED
        lines.append("| " + " | ".join([f"`{key}`", *cells, _cell(text)]) + " |")
    return "\n".join(lines) + "\n"


def dataclass_keys(cls: type) -> list[KeyRow]:
    """A dataclass's fields with their docstrings."""
    docs = field_docs(cls)
    return [(field.name, (), docs.get(field.name, "")) for field in dataclasses.fields(cls)]


def limit_default(name: str, value: object) -> str:
    """A limit's default as the config file writes it: '16 MiB', '2000 ms', '20%'."""
    from harness.units import format_bytes

    if isinstance(value, tuple):
        return ", ".join(f"`{getattr(item, 'metric', item)}:{item}`" for item in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"`{value}`"
    if name.endswith("_bytes_per_s"):
        return format_bytes(value) + "/s"
    if name.endswith("_bytes"):
        return format_bytes(value)
    if name.endswith("_ms"):
        return f"{value:g} ms"
    if name.endswith("_share"):
        return f"{value:.0%}"
    return f"{value:g}"


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

        sections: dict[str, list[KeyRow]] = {
            "memory": dataclass_keys(MemoryFigures),
            "upstream": dataclass_keys(UpstreamFigures),
            "cancellation": dataclass_keys(CancellationFigures),
            "clients": dataclass_keys(ClientFigures),
            "percentiles": dataclass_keys(Percentiles),
        }
        return key_table(sections[section], old)

    return render


def _limits_block(old: str) -> str:
    from harness.gate.config import GateLimits

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
        for section in ("memory", "upstream", "cancellation", "clients", "percentiles")
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
            added = sorted(set(_names(body)) - set(_names(before)))
            removed = sorted(set(_names(before)) - set(_names(body)))
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


def _names(body: str) -> list[str]:
    return [_CELL_SPLIT.split(line)[1].split()[0].strip("`") for line in body.splitlines() if line.startswith("| `")]


_INLINE_FLAG = re.compile(r"`(--[a-z][a-z0-9-]*)")
_COMMAND_LINE = re.compile(r"(?m)^\s*(?:locust|harness|python -m (?:harness|targets)\S*) .*$")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def known_flags() -> set[str]:
    """Every flag a reader of these pages can pass: the plugin's, harness's, the servers' and Locust's own."""
    import importlib

    from locust.argument_parser import get_parser

    parsers = [locust_parser(), get_parser(), *harness_commands().values()]
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
