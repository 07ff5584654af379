"""Which targets the samplers read, and how (harness.capture.sampling does the reading)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from harness.capture.probe import TOKEN_ENV
from harness.capture.probe_client import ProbeClient
from harness.plugin.targets import RunTargets
from harness.runfolder import RunFolder, owner_of

__all__ = ["start_samplers"]


def start_samplers(folder: RunFolder, targets: RunTargets, options: Any) -> Any:
    """Start the samplers on the run folder; return the sampler."""
    from harness.capture.sampling import SampledTarget, Sampler

    ports = {name: urlsplit(url).port for name, url in targets.upstream_urls.items()}
    agents = dict(text.split("=", 1) for text in options.agent)
    profiled = bool(getattr(options, "profile_nframe", 0))
    sampled: list[SampledTarget] = []
    for child in targets.children:
        if owner_of(child.name) is not None:
            sampled.append(SampledTarget(child.name, "upstream", child.url, child.pid, None))
        else:
            probe = ProbeClient.for_child(child) if profiled else None
            sampled.append(SampledTarget(child.name, "relay", child.url, child.pid, ports[child.name], probe=probe))
    sampled += [
        SampledTarget(t.name, "relay", t.url, None, None, has_stats=False)
        for t in targets.plain
        if t.name not in agents
    ]
    sampled += _user_sampled_targets(targets, ports, agents)
    sampled += [
        SampledTarget(name, "server", None, None, None, has_stats=False, agent_url=url) for name, url in agents.items()
    ]
    sampler = Sampler(folder, sampled, options.sample_interval)
    sampler.start()
    return sampler


def _user_sampled_targets(targets: RunTargets, ports: dict[str, int | None], agents: dict[str, str]) -> list[Any]:
    """Launched targets: their process trees, their connections to their own fake upstream, their probe (Python
    under --profile-launched). Attached ones with a PID: their process trees (sampled from outside), and their
    connections to their own upstream when they have one."""
    from harness.capture.sampling import SampledTarget

    sampled = []
    for child in targets.user_children:
        probe = ProbeClient.for_child(child) if TOKEN_ENV in child.spec.env else None
        sampled.append(
            SampledTarget(
                child.name, "relay", child.url, child.pid, ports.get(child.name), has_stats=False, probe=probe
            )
        )
    sampled += [
        SampledTarget(t.name, "relay", t.url, t.pid, ports.get(t.name), has_stats=False)
        for t in targets.user.attaches
        if t.pid is not None and t.name not in agents
    ]
    return sampled
