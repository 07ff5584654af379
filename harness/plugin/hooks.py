"""The Locust plugin's event listeners: importing this module registers them.

init_command_line_parser  the harness's flags (harness.plugin.flags)
init                      the run starts (harness.plugin.lifecycle.HarnessPlugin.start); a bad flag
                          combination: one line, exit 2, nothing launched
test_start / test_stop    samplers start / stop
quitting                  with --gate: the folder finished and judged, before Locust picks its exit code
quit                      the stack stopped, the run folder finished
stream_ended, phase_started, shape_finished   (the harness's own events) records, phases, the shape's end
"""

from __future__ import annotations

import sys
from typing import Any

from locust import events

from harness.errors import HarnessError
from harness.load.phases import phase_started, shape_finished
from harness.load.streaming_user import ClientRecord, stream_ended
from harness.plugin.flags import add_arguments
from harness.plugin.lifecycle import HarnessPlugin

__all__ = ["HarnessPlugin", "current"]

_current: HarnessPlugin | None = None


def current() -> HarnessPlugin | None:
    """The plugin of this process, once Locust's init has run."""
    return _current


_web_ui_actions: dict[str, Any] = {}
"""The plugin's options a web UI start form may set (shown in the UI), by dest."""


def _on_parser(parser: Any, **_: Any) -> None:
    before = {id(action) for action in parser._actions}
    add_arguments(parser)
    _web_ui_actions.update(
        (action.dest, action)
        for action in parser._actions
        if id(action) not in before and getattr(action, "include_in_web_ui", False)
    )


def _on_init(environment: Any, runner: Any, web_ui: Any = None, **_: Any) -> None:
    global _current
    if environment.parsed_options is None:  # Locust used as a library, without its command line
        return
    plugin = HarnessPlugin(environment, runner, web_ui, dict(_web_ui_actions))
    try:
        plugin.start()
    except HarnessError as error:
        # One line, not a traceback; Locust would turn an exception here into exit code 1 after logging it.
        sys.stderr.write(f"locust: error: {error}\n")
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        name = plugin.interrupts.name or "SIGINT"
        sys.stderr.write(f"locust: interrupted by {name} while starting the targets; everything started is stopped\n")
        sys.exit(plugin.interrupts.exit_code or 130)
    _current = plugin


def _on_test_start(environment: Any, **_: Any) -> None:
    if _current is not None:
        _current.on_test_start()


def _on_test_stop(environment: Any, **_: Any) -> None:
    if _current is not None:
        _current.on_test_stop()


def _on_quitting(environment: Any, **_: Any) -> None:
    """With --gate: finish the run folder, judge it, and let a failing verdict set Locust's exit code.

    ``quitting`` fires before Locust chooses its exit code (``quit`` fires after), so this is the last moment
    environment.process_exit_code counts.
    """
    plugin = _current
    if plugin is None or plugin.is_worker or not getattr(plugin.options, "gate", False):
        return
    plugin.stop()  # samplers stopped, stack stopped, meta.json finished, report written: the folder is complete
    from harness.gate.run import judge_locust_run  # pandas loads only when the gate is asked for

    judge_locust_run(environment, plugin.folder.path if plugin.folder is not None else None)
    if plugin.interrupts.exit_code is not None:  # an interrupted run exits with its signal's code, judged or not
        environment.process_exit_code = plugin.interrupts.exit_code


def _on_quit(exit_code: int, **_: Any) -> None:
    if _current is not None:
        _current.stop()


def _on_stream_ended(record: ClientRecord, **_: Any) -> None:
    if _current is not None:
        _current.records.add(record)


def _on_phase(
    name: str, at: float, upstream: Any = None, index: int | None = None, duration_s: float | None = None, **_: Any
) -> None:
    if _current is not None:
        _current.on_phase(name, at, upstream)
        if _current.terminal is not None:
            _current.terminal.phase(name, index, duration_s)


def _on_shape_finished(at: float, **_: Any) -> None:
    if _current is not None:
        _current.shape_finished = True


def _register() -> None:
    events.init_command_line_parser.add_listener(_on_parser)  # type: ignore[no-untyped-call]
    events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
    events.test_start.add_listener(_on_test_start)  # type: ignore[no-untyped-call]
    events.test_stop.add_listener(_on_test_stop)  # type: ignore[no-untyped-call]
    events.quitting.add_listener(_on_quitting)  # type: ignore[no-untyped-call]
    events.quit.add_listener(_on_quit)  # type: ignore[no-untyped-call]
    stream_ended.add_listener(_on_stream_ended)  # type: ignore[no-untyped-call]
    phase_started.add_listener(_on_phase)  # type: ignore[no-untyped-call]
    shape_finished.add_listener(_on_shape_finished)  # type: ignore[no-untyped-call]


_register()
