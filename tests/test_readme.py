"""The README and the pages it links: the commands it gives work, its links land, the design names every part."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import REPO, assert_all_gone, locust

PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in _LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{page.name}: {target} (no heading #{anchor} in {linked.name})")
    return broken


def test_the_readme_gives_the_test_command_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    assert "pip install -e '.[dev]' && python -m pytest -q" in readme
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert "python -m pip install --quiet -e '.[dev]'" in ci
    assert "python -m pytest -q" in ci


def test_every_link_of_the_readme_and_the_docs_lands() -> None:
    assert [problem for page in PAGES for problem in broken_links(page)] == []


def test_a_broken_link_or_anchor_is_named(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A heading: with `code`\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-heading-with-code) [gone](missing.md) [bad](other.md#nowhere)\n")
    assert broken_links(page) == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#nowhere (no heading #nowhere in other.md)",
    ]


def test_the_design_names_every_part() -> None:
    design = (REPO / "docs" / "design.md").read_text()
    parts = [path.name + "/" for path in sorted((REPO / "harness").iterdir()) if (path / "__init__.py").exists()]
    parts += [
        path.name for path in sorted((REPO / "harness").glob("*.py")) if path.stem not in ("__init__", "__main__")
    ]
    assert [part for part in parts if part not in design] == []


def _scenario_example() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Writing your own scenario") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's scenario section has no python example"
    return match[1]


@pytest.mark.slow
def test_the_readme_scenario_runs_as_written(tmp_path: Path) -> None:
    scenario = tmp_path / "my_scenario.py"
    scenario.write_text(_scenario_example())
    args = ["-f", str(scenario), "--headless", "--scenario-scale", "0.1", "--targets", "lazy"]
    with locust(tmp_path, *args) as run:
        code = run.wait(120)
        assert code == 0, run.output()[-3000:]
        events = run.table("events")
        behaviours = {row["behaviour"] for row in run.table("clients")}
    assert [row["name"] for row in events if row["kind"] == "phase_start"] == ["warm-up", "quitters", "drain"]
    upstream = {row["name"]: row["detail"] for row in events if row["kind"] == "upstream_behaviour"}
    assert "tokens=1000000" in upstream["quitters"], upstream
    assert behaviours >= {"fast", "paced:2048B/s+leave_after_tokens:10:reset"}, behaviours
    assert_all_gone(run.tag)
