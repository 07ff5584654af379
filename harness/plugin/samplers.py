"""Which targets the samplers read, and how (harness.capture.sampling does the reading)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from harness.capture.probe import TOKEN_ENV
from harness.capture.probe_client import ProbeClient
from harness.plugin.targets import RunTargets
from harness.runfolder import RunFolder

__all__ = ["start_samplers"]


def start_samplers(folder: RunFolder, targets: RunTargets, options: Any) -> Any:
    """Start the samplers on the run folder; return the sampler."""
    from harness.capture.sampling import SampledTarget, Sampler

    sampled: list[SampledTarget] = []
    upstream_port: int | None = None
    agents = dict(text.split("=", 1) for text in options.agent)
    if targets.children:
        upstream_port = urlsplit(str(targets.children[0].url)).port
        profiled = bool(getattr(options, "profile_nframe", 0))
        for index, child in enumerate(targets.children):
            role = "upstream" if index == 0 else "relay"
            probe = ProbeClient.for_child(child) if profiled and index > 0 else None
            sampled.append(
                SampledTarget(
                    child.name, role, child.url, child.pid, None if index == 0 else upstream_port, probe=probe
                )
            )
    sampled += [
        SampledTarget(t.name, "relay", t.url, None, None, has_stats=False)
        for t in targets.plain
        if t.name not in agents
    ]
    sampled += _user_sampled_targets(targets, upstream_port, agents)
    sampled += [
        SampledTarget(name, "server", None, None, None, has_stats=False, agent_url=url) for name, url in agents.items()
    ]
    sampler = Sampler(folder, sampled, options.sample_interval)
    sampler.start()
    return sampler


def _user_sampled_targets(targets: RunTargets, upstream_port: int | None, agents: dict[str, str]) -> list[Any]:
    """Launched targets: their process trees, their connections to the fake upstream, their probe (Python under
    --profile-launched). Attached ones with a PID: their process trees (sampled from outside)."""
    from harness.capture.sampling import SampledTarget

    sampled = []
    for child in targets.user_children:
        probe = ProbeClient.for_child(child) if TOKEN_ENV in child.spec.env else None
        sampled.append(
            SampledTarget(child.name, "relay", child.url, child.pid, upstream_port, has_stats=False, probe=probe)
        )
    sampled += [
        SampledTarget(t.name, "relay", t.url, t.pid, None, has_stats=False)
        for t in targets.user.attaches
        if t.pid is not None and t.name not in agents
    ]
    return sampled
