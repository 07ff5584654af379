"""The object census in a fresh interpreter (in a traced program with a named holder: test_probe.py).

A fresh one, not the test process: after hundreds of tests that process holds tens of thousands of lists, and the
census traces back only the biggest of the first ones it sizes, within its time budget.
"""

from __future__ import annotations

import json
import textwrap

from tests.support import run_python

CENSUS = textwrap.dedent(
    """
    import json, sys
    from harness.capture.census import take_census

    class Owner:
        def __init__(self):
            self.parts = [bytes(100_000 + i) for i in range(20)]

    owner = Owner()
    census = take_census()
    held = {f"{row['container']}/{row['leaf']}": row["bytes"] for row in census["held"]}
    print(json.dumps({
        "held": held.get("list/bytes"),
        "expected": sum(sys.getsizeof(part) for part in owner.parts),
        "holders": [row["held_by"] for row in census["holders"]],
    }))
    """
)


def test_census_counts_a_leaf_once_whatever_the_census_itself_holds() -> None:
    (line,) = run_python(CENSUS)
    census = json.loads(line)
    assert census["held"] >= census["expected"]
    assert census["held"] < census["expected"] + 200_000  # not counted twice
    assert any(holder.endswith("Owner.parts") for holder in census["holders"]), census["holders"]
