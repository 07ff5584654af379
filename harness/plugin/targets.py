"""The run's targets: the bundled stack, the --launch commands, the --attach and --target-url servers.

:func:`start_targets` launches what is to be launched and checks the rest; :class:`RunTargets` keeps them for the
samplers, the watcher and the stop. It records nothing itself: the plugin writes :meth:`RunTargets.described` to
meta.json.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.launch.process import ChildProcess
from harness.launch.stack import StackOptions, start_bundled_stack
from harness.launch.targets_spec import UserTargets, attach_warning, launch_targets
from harness.load.streaming_user import Target

__all__ = ["RunTargets", "start_targets"]

log = logging.getLogger("harness")


@dataclass
class RunTargets:
    """Everything a run loads, and the processes it started."""

    plain: tuple[Target, ...] = ()
    """Targets of --target-url (loaded, not sampled)."""
    user: UserTargets = field(default_factory=UserTargets)
    children: list[ChildProcess] = field(default_factory=list)
    """The bundled stack: the upstream first, then the bundled relays."""
    user_children: list[ChildProcess] = field(default_factory=list)
    """Targets started with --launch."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(target, warning) for attached targets the harness cannot fully see."""

    @property
    def launched(self) -> list[ChildProcess]:
        return [*self.children, *self.user_children]

    @property
    def upstream_url(self) -> str | None:
        return str(self.children[0].url) if self.children else None

    def loaded(self) -> tuple[Target, ...]:
        """The targets the users stream from, in order."""
        return (
            *self.plain,
            *(Target(child.name, str(child.url)) for child in self.children[1:]),
            *(Target(child.name, str(child.url)) for child in self.user_children),
            *(Target(target.name, target.url) for target in self.user.attaches),
        )

    def described(self) -> list[dict[str, Any]]:
        """What meta.json records of every target."""
        rows: list[dict[str, Any]] = [
            {"name": t.name, "role": "relay", "url": t.url, "pid": None, "kind": "url"} for t in self.plain
        ]
        rows += [
            {"name": c.name, "role": "upstream" if i == 0 else "relay", "url": c.url, "pid": c.pid, "kind": "bundled"}
            for i, c in enumerate(self.children)
        ]
        # "relay": a server between the clients and the fake upstream, judged on cancellation like the bundled.
        rows += [
            {"name": c.name, "role": "relay", "url": c.url, "pid": c.pid, "kind": "launched", "argv": list(c.spec.argv)}
            for c in self.user_children
        ]
        rows += [
            {"name": t.name, "role": "relay", "url": t.url, "pid": t.pid, "kind": "attached"}
            for t in self.user.attaches
        ]
        return rows


def start_targets(targets: RunTargets, relays: tuple[str, ...], options: Any, log_dir: Path) -> None:
    """Launch the bundled stack (when relays are named or a --launch needs the upstream) and the --launch targets
    into ``targets`` (so a failure part way leaves what started there, for the stop); check the --attach ones."""
    user = targets.user
    if relays or user.launches:
        # The fake upstream runs whenever anything is launched: launched targets find it in {upstream} and
        # $STREAM_HARNESS_UPSTREAM_URL, and its per-stream records are what the cancellation figures rest on.
        log.info("starting the bundled stack: upstream%s", "".join(f", {name}" for name in relays))
        targets.children = start_bundled_stack(StackOptions.from_args(options, relays), log_dir)
    if user.launches:
        log.info("launching %s", ", ".join(t.name for t in user.launches))
        targets.user_children = launch_targets(
            user.launches,
            upstream_url=targets.upstream_url,
            log_dir=log_dir,
            timeout_s=options.launch_timeout,
            profile_nframe=options.profile_launched,
        )
    for target in user.attaches:
        warning = attach_warning(target)
        if warning:
            log.warning("%s", warning)
            targets.warnings.append((target.name, warning))
    for child in targets.launched:
        log.info("%-9s %s pid=%s", child.name, child.url, child.pid)
