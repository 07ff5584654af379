"""The run's targets: the bundled stack, the --launch commands, the --attach and --target-url servers.

:func:`start_targets` launches what is to be launched and checks the rest; :class:`RunTargets` keeps them for the
samplers, the watcher and the stop. It records nothing itself: the plugin writes :meth:`RunTargets.described` to
meta.json.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.launch.launched import attach_warning, launch_targets
from harness.launch.process import ChildProcess
from harness.launch.stack import StackOptions, start_bundled_stack, start_upstreams
from harness.launch.targets_spec import UserTargets
from harness.load.streaming_user import Target
from harness.runfolder import owner_of, upstream_name

__all__ = ["RunTargets", "start_targets"]

log = logging.getLogger("harness")


@dataclass
class RunTargets:
    """Everything a run loads, and the processes it started."""

    plain: tuple[Target, ...] = ()
    """Targets of --target-url (loaded, not sampled)."""
    user: UserTargets = field(default_factory=UserTargets)
    children: list[ChildProcess] = field(default_factory=list)
    """The fake upstreams (``upstream@<target>``: one per bundled relay, --launch target and --attach target with
    upstream=PORT), then the bundled relays."""
    user_children: list[ChildProcess] = field(default_factory=list)
    """Targets started with --launch."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(target, warning) for attached targets the harness cannot fully see."""

    @property
    def launched(self) -> list[ChildProcess]:
        return [*self.children, *self.user_children]

    @property
    def upstream_urls(self) -> dict[str, str]:
        """Target name -> the base URL of its own fake upstream (targets without one are absent)."""
        return {owner: str(child.url) for child in self.children if (owner := owner_of(child.name)) is not None}

    @property
    def relays(self) -> list[ChildProcess]:
        """The bundled relays (``children`` without the upstreams)."""
        return [child for child in self.children if owner_of(child.name) is None]

    def loaded(self) -> tuple[Target, ...]:
        """The targets the users stream from, in order."""
        return (
            *self.plain,
            *(Target(child.name, str(child.url)) for child in self.relays),
            *(Target(child.name, str(child.url)) for child in self.user_children),
            *(Target(target.name, target.url) for target in self.user.attaches),
        )

    def described(self) -> list[dict[str, Any]]:
        """What meta.json records of every target."""
        rows: list[dict[str, Any]] = [
            {"name": t.name, "role": "relay", "url": t.url, "pid": None, "kind": "url"} for t in self.plain
        ]
        urls = self.upstream_urls
        rows += [_described(c, "bundled", urls) for c in self.children]
        # "relay": a server between the clients and the fake upstream, judged on cancellation like the bundled.
        rows += [_described(c, "launched", urls) for c in self.user_children]
        rows += [
            {"name": t.name, "role": "relay", "url": t.url, "pid": t.pid, "kind": "attached"}
            | _upstream_of(t.name, urls)
            for t in self.user.attaches
        ]
        return rows


def _upstream_of(name: str, upstream_urls: dict[str, str]) -> dict[str, Any]:
    """meta.json's pointer from a target to its own upstream (nothing when it has none)."""
    if name not in upstream_urls:
        return {}
    return {"upstream": upstream_name(name), "upstream_url": upstream_urls[name]}


def _described(child: ChildProcess, kind: str, upstream_urls: dict[str, str]) -> dict[str, Any]:
    """meta.json's entry of a process the harness started: an upstream (with the target it serves) or a target."""
    entry: dict[str, Any] = {"name": child.name, "url": child.url, "pid": child.pid, "kind": kind}
    owner = owner_of(child.name)
    if owner is not None:
        return entry | {"role": "upstream", "upstream_of": owner}
    if kind == "launched":
        entry["argv"] = list(child.spec.argv)
    return entry | {"role": "relay"} | _upstream_of(child.name, upstream_urls)


def start_targets(
    targets: RunTargets, relays: tuple[str, ...], options: Any, log_dir: Path, snapshot_dir: Path | None = None
) -> None:
    """Launch one fake upstream per bundled relay, --launch target and --attach target with upstream=PORT, then the
    relays and the --launch targets, each pointed at its own upstream, into ``targets`` (so a failure part way leaves
    what started there, for the stop); check the --attach ones."""
    user = targets.user
    stack = dataclasses.replace(
        StackOptions.from_args(options, relays), upstream_per_target=True, snapshot_dir=snapshot_dir
    )
    if relays:
        log.info("starting the bundled relays, each with its own upstream: %s", ", ".join(relays))
        targets.children = start_bundled_stack(stack, log_dir)
    ports = {t.name: t.upstream_port for t in user.attaches if t.upstream_port is not None}
    owners = [*(t.name for t in user.launches), *ports]
    if owners:
        # Every launched target gets its own upstream ({upstream}, $STREAM_HARNESS_UPSTREAM_URL): its books are that
        # target's alone, which is what the cancellation figures rest on.
        targets.children += start_upstreams(owners, stack, log_dir, ports).values()
    if user.launches:
        log.info("launching %s", ", ".join(t.name for t in user.launches))
        targets.user_children = launch_targets(
            user.launches,
            upstream_urls=targets.upstream_urls,
            log_dir=log_dir,
            timeout_s=options.launch_timeout,
            profile_nframe=options.profile_launched,
            snapshot_dir=snapshot_dir,
        )
    for target in user.attaches:
        warning = attach_warning(target)
        if warning:
            log.warning("%s", warning)
            targets.warnings.append((target.name, warning))
    for child in targets.launched:
        log.info("%-9s %s pid=%s", child.name, child.url, child.pid)
