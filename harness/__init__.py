"""stream-harness: load, server memory and upstream connections of streaming endpoints on one timeline.

The public surface for scenarios (locustfiles)::

    from harness import Behaviour, Phase, PhasedShape, StreamingUser, UpstreamBehaviour

Those names load lazily (PEP 562): importing ``harness`` alone imports neither Locust nor gevent, so the
``harness`` command and the asyncio targets stay free of gevent's monkey patching. The first of them a locustfile
imports also registers the Locust plugin (the harness's flags, the stack's lifecycle, the run folder).

The parts, in the order of a run: ``launch`` (targets and the fake upstream as child processes), ``load`` (the
streaming user), ``capture`` (samplers, probe, agent), ``runfolder`` (where they meet), ``analyse``, ``gate``,
``report``; ``plugin`` wires them into Locust and ``cli`` into the ``harness`` command.
"""

from typing import TYPE_CHECKING, Any

from harness.errors import (
    HarnessError,
    RunFolderError,
    TargetDiedError,
    TargetError,
    TargetStartError,
    UsageError,
)

if TYPE_CHECKING:
    from harness.load.phases import Phase, PhasedShape
    from harness.load.streaming_user import Behaviour, StreamingUser
    from harness.load.upstream_behaviour import UpstreamBehaviour

# name -> module that defines it; loading any of them registers the Locust plugin first.
_SCENARIO_NAMES = {
    "Behaviour": "harness.load.streaming_user",
    "Phase": "harness.load.phases",
    "PhasedShape": "harness.load.phases",
    "StreamingUser": "harness.load.streaming_user",
    "UpstreamBehaviour": "harness.load.upstream_behaviour",
}

__all__ = [
    "Behaviour",
    "HarnessError",
    "Phase",
    "PhasedShape",
    "RunFolderError",
    "StreamingUser",
    "TargetDiedError",
    "TargetError",
    "TargetStartError",
    "UpstreamBehaviour",
    "UsageError",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _SCENARIO_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    import importlib

    importlib.import_module("harness.plugin")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
