"""The object census, taken in this process (in a traced program with a named holder: test_probe.py)."""

from __future__ import annotations

import sys

from harness.capture.census import take_census


def test_census_counts_a_leaf_once_whatever_the_census_itself_holds() -> None:
    class Owner:
        def __init__(self) -> None:
            self.parts = [bytes(100_000 + i) for i in range(20)]

    owner = Owner()
    census = take_census()
    held = {(row["container"], row["leaf"]): row for row in census["held"]}
    expected = sum(sys.getsizeof(part) for part in owner.parts)
    assert held[("list", "bytes")]["bytes"] >= expected
    assert held[("list", "bytes")]["bytes"] < expected + 200_000  # not counted twice
    assert any(row["held_by"].endswith("Owner.parts") for row in census["holders"])
