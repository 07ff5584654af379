"""The Locust plugin: the harness's flags, the bundled stack's lifecycle, the run folder and the client records.

A locustfile imports this module; importing it registers the hooks. On the master (or the single local process):

    init        flags checked by Locust's parser already (a bad one: one line, exit 2, nothing launched);
                the run folder is created; the targets are started: the bundled relays (--targets, or all of them
                when no target is named otherwise), the fake upstream (with them or with any --launch), the
                user's --launch commands (harness.launch.targets_spec); --attach and --target-url servers are only
                checked; all are recorded in meta.json; a watcher greenlet checks every launched one is alive
    test_start  samplers start; each phase boundary becomes an event (and a sampler mark)
    test_stop   samplers stop; client records are flushed
    quit        the stack is stopped (SIGTERM, then SIGKILL), the run folder finished; also on Ctrl-C and SIGTERM
                (Locust fires quit then), and at interpreter exit whatever happened before

Workers only run users: target URLs reach them in Locust's parsed options (the master's ``harness_targets``),
and their client records go back to the master in batches with Locust's message API. A target that dies ends
the test: a failure in Locust's stats, a ``target_died`` event, exit code 1.
"""

from __future__ import annotations

import atexit
import logging
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from harness.analyse import growth
from harness.capture.probe import TOKEN_ENV
from harness.capture.probe_client import ProbeClient
from harness.errors import HarnessError, TargetDiedError, UsageError
from harness.gate.config import add_locust_gate_arguments
from harness.launch.process import ChildProcess, stop_all
from harness.launch.stack import (
    BUNDLED_RELAYS,
    StackOptions,
    add_stack_arguments,
    parse_target_names,
    start_bundled_stack,
)
from harness.launch.targets_spec import (
    UserTargets,
    add_target_arguments,
    attach_warning,
    format_requests,
    launch_targets,
)
from harness.load.pacing import Pace
from harness.load.phases import phase_started, shape_finished
from harness.load.streaming_user import (
    MIN_RCVBUF_BYTES,
    ClientRecord,
    Target,
    format_targets,
    parse_targets,
    stream_ended,
)
from harness.report.live_view import install_live_view
from harness.runfolder import RunFolder
from harness.units import argparse_type, parse_duration, parse_size, positive_float

__all__ = ["HarnessPlugin", "add_arguments", "current"]

log = logging.getLogger("harness")

RECORDS_MESSAGE = "harness_client_records"
FLUSH_INTERVAL_S = 0.5
WATCH_INTERVAL_S = 0.5
STOP_GRACE_S = 3.0

PLUGIN_FLAGS = (
    "targets",
    "target_url",
    "read_pace",
    "client_rcvbuf",
    "stream_api",
    "run_dir",
    "scenario_scale",
    "sample_interval",
    "agent",
    "launch",
    "launch_ready",
    "launch_timeout",
    "profile_launched",
    "attach",
    "request",
    "request_body",
    "request_api",
)
_UPSTREAM_QUERY = (
    ("upstream_tokens", "tokens"),
    ("upstream_token_bytes", "token_bytes"),
    ("upstream_rate", "rate"),
    ("upstream_header_delay", "header_delay"),
    ("upstream_first_token_delay", "first_token_delay"),
)
"""Stack flags also sent per request, so values changed in the web UI apply to the next test run."""


# -- flags --------------------------------------------------------------------------------------------------------
def _targets_text(text: str, *, what: str) -> str:
    return ",".join(parse_target_names(text, what=what))


def _target_urls_text(text: str, *, what: str) -> str:
    return format_targets(parse_targets(text, what=what)) if text.strip() else ""


def _pace_text(text: str, *, what: str) -> str:
    return str(Pace.parse(text, what=what))


def _rcvbuf(text: str, *, what: str) -> int:
    value = parse_size(text, what=what)
    if 0 < value < MIN_RCVBUF_BYTES:
        raise UsageError(
            f"{what} must be 0 (kernel autotuning) or at least {MIN_RCVBUF_BYTES} bytes "
            f"(Linux raises anything smaller), but got {text!r}"
        )
    return value


def _agent_text(text: str, *, what: str) -> str:
    name, sep, url = text.partition("=")
    parts = urlsplit(url)
    if not sep or not name.strip() or parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"{what} must be NAME=http://HOST:PORT (a `harness agent`), but got {text!r}")
    return f"{name.strip()}={url.rstrip('/')}"


def _interval(text: str, *, what: str) -> float:
    value = parse_duration(text, what=what)
    if not value >= 0.01:
        raise UsageError(f"{what} must be at least 10ms, but got {text!r}")
    return value


def add_arguments(parser: Any) -> None:
    """The plugin's flags and the bundled stack's, on Locust's parser (they show in the web UI)."""
    launch_only = {"include_in_web_ui": False}
    parser.add_argument(
        "--targets",
        type=argparse_type(_targets_text, "--targets"),
        default=None,
        help=f"bundled relays to launch and load, comma-separated (default: {','.join(BUNDLED_RELAYS)}, "
        "unless --launch, --attach or --target-url name targets)",
        **launch_only,
    )
    parser.add_argument(
        "--target-url",
        type=argparse_type(_target_urls_text, "--target-url"),
        default="",
        metavar="NAME=URL[,NAME=URL...]",
        help="load these running servers (not sampled); see --attach to sample them",
        **launch_only,
    )
    parser.add_argument(
        "--read-pace",
        type=argparse_type(_pace_text, "--read-pace"),
        default="1KiB/s",
        help="pace of slow readers whose scenario names none: bytes/s (4KiB/s) or tokens/s (5tok/s) (default: 1KiB/s)",
    )
    parser.add_argument(
        "--client-rcvbuf",
        type=argparse_type(_rcvbuf, "--client-rcvbuf"),
        default=4096,
        help=f"SO_RCVBUF of each client socket, set before connecting; 0 = kernel autotuning, "
        f"else >= {MIN_RCVBUF_BYTES} (default: 4096)",
    )
    parser.add_argument(
        "--stream-api",
        choices=("sse", "chunked"),
        default="sse",
        help="sse = POST /v1/chat/completions with stream=true; chunked = GET /v1/stream (default: sse)",
    )
    parser.add_argument(
        "--run-dir",
        default="reports",
        help="where run folders are created (default: reports)",
        **launch_only,
    )
    parser.add_argument(
        "--scenario-scale",
        type=argparse_type(positive_float, "--scenario-scale"),
        default=1.0,
        help="multiply every phase duration of the scenario (0.2 = five times shorter) (default: 1)",
    )
    parser.add_argument(
        "--sample-interval",
        type=argparse_type(_interval, "--sample-interval"),
        default=0.25,
        help="seconds between samples of the targets' processes and stats (default: 250ms)",
        **launch_only,
    )
    parser.add_argument(
        "--agent",
        type=argparse_type(_agent_text, "--agent"),
        action="append",
        default=[],
        metavar="NAME=URL",
        help="also read the server figures of target NAME from a `harness agent` at URL (repeatable)",
        **launch_only,
    )
    add_stack_arguments(parser, web_ui=True)
    add_locust_gate_arguments(parser)
    add_target_arguments(parser)
    # The demo profiles its relays (growth sites and holders in the report); a CI gate passes --profile-nframe 0.
    parser.set_defaults(profile_nframe=1)


# -- the plugin ---------------------------------------------------------------------------------------------------
class HarnessPlugin:
    """The harness's state in one Locust process (master, local or worker)."""

    def __init__(self, environment: Any, runner: Any, web_ui: Any) -> None:
        self.environment = environment
        self.runner = runner
        self.web_ui = web_ui
        self.options = environment.parsed_options
        self.is_worker = isinstance(runner, WorkerRunner)
        self.folder: RunFolder | None = None
        self.children: list[ChildProcess] = []
        """The bundled stack: the upstream first, then the bundled relays."""
        self.user_children: list[ChildProcess] = []
        """Targets started with --launch."""
        self.user_targets = UserTargets()
        self.plain_targets: tuple[Target, ...] = ()
        """Targets of --target-url (loaded, not sampled)."""
        self.targets: tuple[Target, ...] = ()
        self.sampler: Any = None
        self.shape_finished = False
        self.target_died = False
        self.stopped = False
        self._finished = False
        self._test_running = False
        self._phase: str | None = None
        self._pending: list[dict[str, Any]] = []
        self._phases_seen = 0
        self.report_path: Path | None = None
        self._greenlets: list[gevent.Greenlet] = []

    # lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Everything ``init`` does: run folder, stack, watcher (master/local); record forwarding (workers)."""
        if self.is_worker:
            self._greenlets.append(gevent.spawn(self._flush_loop))
            return
        options = self.options
        scenario = Path(str(options.locustfile or "run").split(",")[0]).stem
        flags = {name: getattr(options, name, None) for name in (*PLUGIN_FLAGS, *_stack_dests())}
        self.plain_targets = parse_targets(options.target_url) if options.target_url else ()
        relays = _bundled_relays(options)
        # Checked before the run folder exists and before anything is launched: a bad combination exits 2.
        self.user_targets = UserTargets.from_options(options, [*(t.name for t in self.plain_targets), *relays])
        if not relays and not self.plain_targets and not self.user_targets.any:
            relays = BUNDLED_RELAYS  # nothing named: the demo's bundled relays
        self.folder = RunFolder.create(Path(options.run_dir), scenario, {"flags": flags})
        atexit.register(self.stop)
        try:
            described = self._start_targets(relays)
        except BaseException:
            self.folder.event("start_failed", detail=str(sys.exc_info()[1]))
            self.stop(status="interrupted")
            raise
        self.folder.update_meta(targets=described)
        options.harness_targets = format_targets(self.targets)
        options.harness_upstream_query = ""
        if isinstance(self.runner, MasterRunner):
            self.runner.register_message(RECORDS_MESSAGE, self._on_worker_records)
        self._greenlets.append(gevent.spawn(self._flush_loop))
        if self.children or self.user_children:
            self._greenlets.append(gevent.spawn(self._watch))
        install_live_view(self.environment, lambda: self.folder, lambda: self.report_path)

    def on_test_start(self) -> None:
        if self.is_worker or self.folder is None:
            return
        if self.children:  # per-request upstream settings, so the web UI's values apply to this run
            self.options.harness_upstream_query = upstream_query(self.options)
        self.folder.event("test_start")
        self._test_running = True
        self.sampler = _start_samplers(self)

    def on_test_stop(self) -> None:
        self.flush()
        if self.is_worker or self.folder is None or not self._test_running:
            return
        self._test_running = False
        self._end_phase()
        if self.sampler is not None:
            sampler, self.sampler = self.sampler, None
            sampler.stop()
        self.folder.event("test_stop")
        if self.web_ui is not None:
            # The stack and the folder stay for the next test; this test's report is written now, and linked
            # from the live view. Headless runs write theirs once the folder is finished (stop()).
            self.folder.update_meta(status="complete" if self.shape_finished else "stopped", ended_at=time.time())
            self._write_report()

    def on_phase(self, name: str, at: float) -> None:
        if self.folder is None:
            return
        self._end_phase(at)
        self._phase = name
        self._phases_seen += 1
        if self.sampler is not None:
            # tracemalloc snapshots (profiling on): after the warm-up, when the load proper starts, and when the
            # drain starts (the end of the load, before the servers free what it left in them).
            label = growth.BEFORE if self._phases_seen == 2 else growth.AFTER if name == "drain" else None
            self.sampler.phase(name, snapshot_label=label)  # writes the phase_start event and samples targets
        else:
            self.folder.event("phase_start", name, t=at)

    def _end_phase(self, at: float | None = None) -> None:
        if self._phase is not None and self.folder is not None:
            self.folder.event("phase_end", self._phase, t=at)
        self._phase = None

    def stop(self, status: str | None = None) -> None:
        """Flush, stop samplers and the stack, finish the run folder. Safe to call more than once."""
        if self.stopped:
            return
        self.stopped = True
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        try:
            self.flush()
            if self.sampler is not None:
                sampler, self.sampler = self.sampler, None
                sampler.stop()
        finally:
            if self.children or self.user_children:
                log.info("stopping the launched targets")
                stop_all([*self.children, *self.user_children], grace_s=STOP_GRACE_S)
            if self.folder is not None:
                self._end_phase()
                if status is None:
                    status = "complete" if self.shape_finished and not self.target_died else "interrupted"
                self.folder.finish(status)
                self._finished = True
                log.info("run folder: %s", self.folder.path)
                self._write_report()

    def _write_report(self) -> None:
        """Analyse the run folder and write summary.json and report.html; print the report's path."""
        assert self.folder is not None
        if not self.folder.file("events").exists():
            return  # nothing was measured (the stack never started)
        from harness.report.html import write_report  # pandas and plotly load only where reports are written

        try:
            self.report_path = write_report(self.folder.path)
        except HarnessError as error:
            log.error("no report: %s", error)
            return
        log.info("report: %s", self.report_path)

    def _start_targets(self, relays: tuple[str, ...]) -> list[dict[str, Any]]:
        """Launch the bundled stack (when relays are named or a --launch needs the upstream), the --launch targets,
        check the --attach ones; set ``self.targets``; return what meta.json records of them."""
        assert self.folder is not None
        options, user = self.options, self.user_targets
        described: list[dict[str, Any]] = [
            {"name": t.name, "role": "relay", "url": t.url, "pid": None, "kind": "url"} for t in self.plain_targets
        ]
        if relays or user.launches:
            # The fake upstream runs whenever anything is launched: launched targets find it in {upstream} and
            # $STREAM_HARNESS_UPSTREAM_URL, and its per-stream records are what the cancellation figures rest on.
            log.info("starting the bundled stack: upstream%s", "".join(f", {name}" for name in relays))
            self.children = start_bundled_stack(StackOptions.from_args(options, relays), self.folder.logs)
            described += [
                {
                    "name": c.name,
                    "role": "upstream" if i == 0 else "relay",
                    "url": c.url,
                    "pid": c.pid,
                    "kind": "bundled",
                }
                for i, c in enumerate(self.children)
            ]
        upstream_url = str(self.children[0].url) if self.children else None
        if user.launches:
            log.info("launching %s", ", ".join(t.name for t in user.launches))
            self.user_children = launch_targets(
                user.launches,
                upstream_url=upstream_url,
                log_dir=self.folder.logs,
                timeout_s=options.launch_timeout,
                profile_nframe=options.profile_launched,
            )
            # "relay": a server between the clients and the fake upstream, judged on cancellation like the bundled.
            described += [
                {
                    "name": c.name,
                    "role": "relay",
                    "url": c.url,
                    "pid": c.pid,
                    "kind": "launched",
                    "argv": list(c.spec.argv),
                }
                for c in self.user_children
            ]
        for target in user.attaches:
            warning = attach_warning(target)
            if warning:
                log.warning("%s", warning)
                self.folder.event("attach_warning", target.name, warning)
            described.append(
                {"name": target.name, "role": "relay", "url": target.url, "pid": target.pid, "kind": "attached"}
            )
        for child in [*self.children, *self.user_children]:
            log.info("%-9s %s pid=%s", child.name, child.url, child.pid)
        self.targets = (
            *self.plain_targets,
            *(Target(child.name, str(child.url)) for child in self.children[1:]),
            *(Target(child.name, str(child.url)) for child in self.user_children),
            *(Target(target.name, target.url) for target in user.attaches),
        )
        self.options.harness_requests = format_requests(user.requests)
        return described

    # client records ------------------------------------------------------------------------------------------
    def add_record(self, record: ClientRecord) -> None:
        self._pending.append(record.row())

    def flush(self) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        if self.is_worker:
            try:
                self.runner.send_message(RECORDS_MESSAGE, rows)
            except Exception as error:  # the master may be gone at the very end
                log.warning("could not send %d client records to the master: %s", len(rows), error)
        elif self.folder is not None and not self._finished:
            self.folder.table("clients").extend(rows)

    def _on_worker_records(self, environment: Any, msg: Any, **_: Any) -> None:
        if self.folder is not None and not self._finished:
            self.folder.table("clients").extend(msg.data)

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()

    # targets dying -------------------------------------------------------------------------------------------
    def _watch(self) -> None:
        while True:
            gevent.sleep(WATCH_INTERVAL_S)
            for child in [*self.children, *self.user_children]:
                try:
                    child.check_alive()
                except TargetDiedError as error:
                    self._on_target_died(child, error)
                    return

    def _on_target_died(self, child: ChildProcess, error: TargetDiedError) -> None:
        self.target_died = True
        log.error("%s; ending the test", error)
        if self.folder is not None:
            self.folder.event("target_died", child.name, str(error))
        self.environment.events.request.fire(
            request_type="TARGET",
            name=f"{child.name} alive",
            response_time=0.0,
            response_length=0,
            exception=error,
            context={},
        )
        self.environment.process_exit_code = 1
        self.runner.quit()
        if self.web_ui is not None:
            self.web_ui.stop()


def _bundled_relays(options: Any) -> tuple[str, ...]:
    """The bundled relays named with --targets (none when it is not given)."""
    return parse_target_names(options.targets) if options.targets else ()


def _stack_dests() -> list[str]:
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    add_stack_arguments(parser)
    return [action.dest for action in parser._actions]


def upstream_query(options: Any) -> str:
    """The stack's upstream flags as query parameters (the relays forward the query string to the upstream)."""
    return urlencode([(name, _number_text(getattr(options, dest))) for dest, name in _UPSTREAM_QUERY])


def _number_text(value: float) -> str:
    # Not "{:g}": 1000000 tokens would travel as "1e+06", which is no whole number.
    return str(value) if isinstance(value, int) else repr(float(value))


def _start_samplers(plugin: HarnessPlugin) -> Any:
    """Start the samplers (harness.capture.sampling) on the run folder; return the sampler, or None."""
    from harness.capture.sampling import SampledTarget, Sampler

    assert plugin.folder is not None
    sampled: list[SampledTarget] = []
    upstream_port: int | None = None
    agents = dict(text.split("=", 1) for text in plugin.options.agent)
    if plugin.children:
        upstream_port = urlsplit(str(plugin.children[0].url)).port
        profiled = bool(getattr(plugin.options, "profile_nframe", 0))
        for index, child in enumerate(plugin.children):
            role = "upstream" if index == 0 else "relay"
            probe = ProbeClient.for_child(child) if profiled and index > 0 else None
            sampled.append(
                SampledTarget(
                    child.name, role, child.url, child.pid, None if index == 0 else upstream_port, probe=probe
                )
            )
    sampled += [
        SampledTarget(t.name, "relay", t.url, None, None, has_stats=False)
        for t in plugin.plain_targets
        if t.name not in agents
    ]
    sampled += _user_sampled_targets(plugin, upstream_port, agents)
    sampled += [
        SampledTarget(name, "server", None, None, None, has_stats=False, agent_url=url) for name, url in agents.items()
    ]
    sampler = Sampler(plugin.folder, sampled, plugin.options.sample_interval)
    sampler.start()
    return sampler


def _user_sampled_targets(plugin: HarnessPlugin, upstream_port: int | None, agents: dict[str, str]) -> list[Any]:
    """Launched targets: their process trees, their connections to the fake upstream, their probe (Python under
    --profile-launched). Attached ones with a PID: their process trees (sampled from outside)."""
    from harness.capture.sampling import SampledTarget

    sampled = []
    for child in plugin.user_children:
        probe = ProbeClient.for_child(child) if TOKEN_ENV in child.spec.env else None
        sampled.append(
            SampledTarget(child.name, "relay", child.url, child.pid, upstream_port, has_stats=False, probe=probe)
        )
    sampled += [
        SampledTarget(t.name, "relay", t.url, t.pid, None, has_stats=False)
        for t in plugin.user_targets.attaches
        if t.pid is not None and t.name not in agents
    ]
    return sampled


# -- hooks --------------------------------------------------------------------------------------------------------
_current: HarnessPlugin | None = None


def current() -> HarnessPlugin | None:
    """The plugin of this process, once Locust's init has run."""
    return _current


def _on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


def _on_init(environment: Any, runner: Any, web_ui: Any = None, **_: Any) -> None:
    global _current
    if environment.parsed_options is None:  # Locust used as a library, without its command line
        return
    plugin = HarnessPlugin(environment, runner, web_ui)
    try:
        plugin.start()
    except HarnessError as error:
        # One line, not a traceback; Locust would turn an exception here into exit code 1 after logging it.
        sys.stderr.write(f"locust: error: {error}\n")
        sys.exit(error.exit_code)
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
    from harness.gate.checks import judge_locust_run  # pandas loads only when the gate is asked for

    judge_locust_run(environment, plugin.folder.path if plugin.folder is not None else None)


def _on_quit(exit_code: int, **_: Any) -> None:
    if _current is not None:
        _current.stop()


def _on_stream_ended(record: ClientRecord, **_: Any) -> None:
    if _current is not None:
        _current.add_record(record)


def _on_phase(name: str, at: float, **_: Any) -> None:
    if _current is not None:
        _current.on_phase(name, at)


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
