"""The phased shape's schedule and ticks, in a subprocess (importing Locust patches the process with gevent).

Run time is simulated by moving the shape's start time; the runner is a stand-in with a user count and options.
That Locust applies the ticks (users of the right classes in the right phase) is checked on the real scenarios in
test_locustfiles.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = r"""
import json, sys, time
from types import SimpleNamespace
from harness.errors import UsageError
from harness.load.phases import Phase, PhasedShape, phase_started, schedule, shape_finished
from harness.load.streaming_user import StreamingUser
from harness.load.upstream_behaviour import UpstreamBehaviour

class A(StreamingUser):
    pass

class B(StreamingUser):
    pass

class Shape(PhasedShape):
    phases = (
        Phase("warm", 10, users=3, user_classes=(A,)),
        Phase("more", 10, users=6, spawn_rate=2),
        Phase("other", 4, users=6, user_classes=(B,), upstream=UpstreamBehaviour(first_token_delay_s=600)),
        Phase("drain", 0.5),
    )

out = {"events": [], "finished": []}
def started(**kw):
    upstream = kw["upstream"].settings() if kw["upstream"] is not None else None
    out["events"].append([kw["name"], kw["index"], round(kw["duration_s"], 3), upstream])

phase_started.add_listener(started)
shape_finished.add_listener(lambda **kw: out["finished"].append(True))
scale = float(sys.argv[1])
shape = Shape()
options = SimpleNamespace(scenario_scale=scale)
runner = SimpleNamespace(user_count=0, environment=SimpleNamespace(parsed_options=options))
shape.runner = runner

def tick_at(t, users):
    runner.user_count = users
    shape.start_time = time.perf_counter() - t
    result = shape.tick()
    if result is None:
        return None
    count, rate, classes = result
    return [count, rate, None if classes is None else [c.__name__ for c in classes]]

out["schedule"] = [[p.phase.name, p.start_s, p.end_s] for p in schedule(Shape.phases, scale)]
out["total_s"] = shape.total_s()
times = json.loads(sys.argv[2])
out["ticks"] = [tick_at(t, users) for t, users in times]
errors = []
for bad in (dict(name="", duration_s=1), dict(name="x", duration_s=0), dict(name="x", duration_s=1, users=-1),
            dict(name="x", duration_s=1, spawn_rate=0)):
    try:
        Phase(**bad)
    except UsageError as error:
        errors.append(str(error))
try:
    class Twice(PhasedShape):
        phases = (Phase("a", 1), Phase("a", 1))
except UsageError as error:
    errors.append(str(error))
try:
    class Classless(PhasedShape):
        phases = (Phase("a", 1), Phase("b", 1, users=2))
except UsageError as error:
    errors.append(str(error))
try:
    schedule(Shape.phases, 0)
except UsageError as error:
    errors.append(str(error))
out["errors"] = errors
print(json.dumps(out))
"""


def run(scale: float, times: list[tuple[float, int]]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(scale), json.dumps(times)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_schedule_scales_durations_with_a_floor_of_one_second() -> None:
    result = run(0.5, [])
    assert result["schedule"] == [["warm", 0, 5], ["more", 5, 10], ["other", 10, 12], ["drain", 12, 13]]
    assert result["total_s"] == 13
    assert run(1.0, [])["schedule"][-1] == ["drain", 24, 25]


def test_ticks_follow_the_phases_and_end_the_test() -> None:
    times = [(0.0, 0), (3.0, 3), (10.5, 3), (15.0, 6), (20.5, 6), (21.5, 0), (22.5, 6), (24.2, 6), (25.5, 0), (26, 0)]
    result = run(1.0, times)
    assert result["ticks"] == [
        [3, 100.0, ["A"]],
        [3, 100.0, ["A"]],
        [6, 2.0, ["A"]],  # "more" keeps the classes of the phase before
        [6, 2.0, ["A"]],
        [0, 100.0, None],  # "other" changes the classes: every user is stopped first...
        [6, 100.0, ["B"]],  # ...then the new ones start at the next tick
        [6, 100.0, ["B"]],
        [0, 100.0, None],  # the drain
        None,
        None,
    ]
    assert result["events"] == [
        ["warm", 0, 10.0, None],
        ["more", 1, 10.0, None],
        ["other", 2, 4.0, {"first_token_delay": 600}],  # the phase's upstream behaviour, for the plugin to set
        ["drain", 3, 1.0, None],
    ]
    assert result["finished"] == [True]


def test_bad_phases_are_rejected_with_their_name_and_value() -> None:
    errors = run(1.0, [])["errors"]
    assert errors == [
        "a phase needs a name",
        "phase 'x': duration_s must be > 0, but got 0",
        "phase 'x': users must be >= 0, but got -1",
        "phase 'x': spawn_rate must be > 0, but got 0",
        "Twice: phase names must be unique, but got ['a', 'a']",
        "Classless: phase 'b' has users but no user_classes (nor a phase before it)",
        "--scenario-scale must be > 0, but got 0",
    ]
