"""At each phase start (and at test start), set every fake upstream's defaults to the phase's upstream behaviour
over the stack flags' values, and write an ``upstream_behaviour`` row to events.csv.

The row's name is the phase (``test_start`` before the first), its detail the settings in force, as
``tokens=... token_bytes=... rate=... header_delay=... first_token_delay=...`` and then ``declared: ...`` (what the
phase itself declared, ``none`` when it declared nothing). An upstream that does not take them is one
``upstream_warning`` row and a log line; the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from harness.load.upstream_behaviour import UpstreamBehaviour, control_token, put_defaults
from harness.plugin.flags import upstream_flag_settings
from harness.runfolder import RunFolder

__all__ = ["set_upstream_defaults"]

log = logging.getLogger("harness")


def _text(settings: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in settings.items()) or "none"


def set_upstream_defaults(
    folder: RunFolder, upstream_urls: Mapping[str, str], options: Any, phase: str, behaviour: UpstreamBehaviour | None
) -> dict[str, Any]:
    """PUT the defaults of ``phase`` to every upstream in ``upstream_urls`` (name -> base URL); the settings sent."""
    declared = behaviour.settings() if behaviour is not None else {}
    settings: dict[str, Any] = upstream_flag_settings(options) | declared
    failures = put_defaults(upstream_urls.values(), settings, control_token()) if upstream_urls else []
    folder.event("upstream_behaviour", phase, f"{_text(settings)}; declared: {_text(declared)}")
    for failure in failures:
        log.warning("%s", failure)
        folder.event("upstream_warning", phase, failure)
    return settings
