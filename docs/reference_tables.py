"""How the reference pages' tables are rendered: flag tables from argument parsers, key tables from the code.

Used by docs/generate.py, which says which table goes where.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import Any

UNDOCUMENTED = "**undocumented**"
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


def table_keys(body: str) -> list[str]:
    """The first word of each row's first cell (a flag, a key), in order."""
    return [_CELL_SPLIT.split(line)[1].split()[0].strip("`") for line in body.splitlines() if line.startswith("| `")]
