"""The layout's rules, read from the source: which part may import which, no import cycles, small modules.

The parts are harness/'s subpackages (load, capture, analyse, judge, report, gate, launch, plugin) and its top-level
modules (runfolder, errors, units, cli). The flow meets at the run folder: capture writes it, analyse reads it,
judge decides on what analyse computed, report and gate show what judge decided. So an arrow may only point back
up that flow. Every import counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import is
still a dependency.
"""

from __future__ import annotations

import ast
import statistics
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO

PARTS = {"load", "capture", "analyse", "judge", "report", "gate", "launch", "plugin", "cli", "runfolder", "units"}
FORBIDDEN = {
    "capture": {"analyse", "judge", "report", "gate"},
    "analyse": {"judge", "report", "gate"},
    "judge": {"report", "gate"},
    "runfolder": PARTS - {"runfolder"},
    "errors": PARTS,
}
"""part -> the parts it must never import (the meeting point and the exception tree import no part but errors)."""

MAX_LINES = 400
MAX_MEDIAN_LINES = 200


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported} (line {self.line})"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file of every module under ``root/package``."""
    return {module_name(root, path): path for path in sorted((root / package).rglob("*.py"))}


def imports(root: Path, package: str) -> list[Import]:
    """Every import statement in ``package``'s modules, resolved to the module it loads where that is one of
    ``package``'s (``from harness.analyse import growth`` -> harness.analyse.growth), else the name as written."""
    known = modules(root, package)
    found = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [Import(name, alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.append(Import(name, candidate if candidate in known else base, node.lineno))
    return found


def part(module: str) -> str | None:
    """harness.capture.sampling -> capture; harness.runfolder -> runfolder; outside harness -> None."""
    pieces = module.split(".")
    if pieces[0] != "harness" or len(pieces) < 2:
        return None
    return pieces[1]


def layering_violations(found: list[Import]) -> list[str]:
    violations = []
    for each in found:
        source, target = part(each.importer), part(each.imported)
        if source is not None and target in FORBIDDEN.get(source, ()):
            violations.append(f"{each}: {source} must not import {target}")
    return violations


def cycles(found: list[Import]) -> list[list[str]]:
    """The import cycles among the modules (strongly connected components of more than one module, or a module
    that imports itself), each sorted."""
    graph: dict[str, set[str]] = {}
    for each in found:
        graph.setdefault(each.importer, set()).add(each.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is a few hundred edges, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in graph:
                continue
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def crossings(found: list[Import], forbidden_root: str) -> list[str]:
    return [str(each) for each in found if each.imported.split(".")[0] == forbidden_root]


def line_counts(root: Path, packages: tuple[str, ...]) -> dict[str, int]:
    return {
        str(path.relative_to(root)): len(path.read_text().splitlines())
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def size_violations(counts: dict[str, int]) -> list[str]:
    """Modules over MAX_LINES, and the median over MAX_MEDIAN_LINES (package ``__init__`` files left out of the
    median: most are empty markers and would pull it down for nothing)."""
    found = [f"{path}: {lines} lines (limit {MAX_LINES})" for path, lines in counts.items() if lines > MAX_LINES]
    median = statistics.median(lines for path, lines in counts.items() if not path.endswith("__init__.py"))
    if median > MAX_MEDIAN_LINES:
        found.append(f"median module: {median:g} lines (limit {MAX_MEDIAN_LINES})")
    return found


# -- the rules on this repository -----------------------------------------------------------------------------------


def test_no_part_imports_a_part_downstream_of_it() -> None:
    found = imports(REPO, "harness")
    assert len(found) > 100, "the import scan found too little: is REPO the repository root?"
    assert layering_violations(found) == []


def test_no_import_cycles_in_harness() -> None:
    assert cycles(imports(REPO, "harness")) == []


def test_harness_and_targets_never_import_each_other() -> None:
    assert crossings(imports(REPO, "harness"), "targets") == []
    assert crossings(imports(REPO, "targets"), "harness") == []


def test_no_module_over_400_lines_and_the_median_at_most_200() -> None:
    assert size_violations(line_counts(REPO, ("harness", "targets"))) == []


def packages_without_docstring(root: Path, packages: tuple[str, ...]) -> list[str]:
    """Packages whose ``__init__.py`` does not say what the part offers."""
    inits = [init for package in packages for init in sorted((root / package).rglob("__init__.py"))]
    return [str(init.parent.relative_to(root)) for init in inits if not ast.get_docstring(ast.parse(init.read_text()))]


def test_every_package_says_what_it_offers() -> None:
    assert packages_without_docstring(REPO, ("harness", "targets")) == []


# -- the checks catch what they are for ------------------------------------------------------------------------------


@pytest.fixture
def bad_tree(tmp_path: Path) -> Path:
    """A small harness/ that breaks every rule once."""
    files = {
        "harness/__init__.py": "",
        "harness/runfolder.py": "from harness.errors import X\nfrom harness.units import parse_size\n",
        "harness/errors.py": "",
        "harness/capture/__init__.py": "",
        "harness/capture/sampling.py": "def later():\n    from harness.analyse import growth\n",
        "harness/analyse/__init__.py": "",
        "harness/analyse/growth.py": "from ..report.html import write\n",
        "harness/report/__init__.py": "",
        "harness/report/html.py": "from harness.report import charts\n",
        "harness/report/charts.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import harness.report.html\n"
        ),
        "harness/judge/__init__.py": "import targets.eager\n",
        "targets/__init__.py": "",
        "targets/eager.py": "from harness.units import parse_size\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_layering_check_names_lazy_and_relative_imports(bad_tree: Path) -> None:
    assert layering_violations(imports(bad_tree, "harness")) == [
        "harness.analyse.growth imports harness.report.html (line 1): analyse must not import report",
        "harness.capture.sampling imports harness.analyse.growth (line 2): capture must not import analyse",
        "harness.runfolder imports harness.units (line 2): runfolder must not import units",
    ]


def test_the_cycle_check_finds_a_cycle_through_a_type_checking_import(bad_tree: Path) -> None:
    assert cycles(imports(bad_tree, "harness")) == [["harness.report.charts", "harness.report.html"]]


def test_the_crossing_check_finds_both_directions(bad_tree: Path) -> None:
    assert crossings(imports(bad_tree, "harness"), "targets") == ["harness.judge imports targets.eager (line 1)"]
    assert crossings(imports(bad_tree, "targets"), "harness") == ["targets.eager imports harness.units (line 1)"]


def test_the_size_check_names_a_long_module_and_a_high_median() -> None:
    assert size_violations({"a.py": 401, "b.py": 10, "c/__init__.py": 0}) == [
        "a.py: 401 lines (limit 400)",
        "median module: 205.5 lines (limit 200)",
    ]
    assert size_violations({"a.py": 400, "b.py": 10, "c.py": 200}) == []


def test_a_package_without_a_docstring_is_named(bad_tree: Path) -> None:
    (bad_tree / "harness" / "judge" / "__init__.py").write_text('"""The checks."""\n')
    assert packages_without_docstring(bad_tree, ("harness",)) == [
        "harness",
        "harness/analyse",
        "harness/capture",
        "harness/report",
    ]
