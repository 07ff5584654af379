"""One run's lifecycle in one Locust process: the run folder, the targets, the samplers, the stop.

On the master (or the single local process): ``start`` (at Locust's init) checks the flag combination, creates
the run folder, starts the targets and a watcher; ``on_test_start`` starts the samplers; each phase boundary
becomes an event (and a sampler mark); ``on_test_stop`` stops the samplers; ``stop`` (at quit, on Ctrl-C and
SIGTERM, at interpreter exit) stops the stack and finishes the run folder. Workers only forward client records.
A target that dies ends the test: a failure in Locust's stats, a ``target_died`` event, exit code 1.
"""

from __future__ import annotations

import atexit
import logging
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.lock
from locust.runners import WorkerRunner

from harness.analyse import growth
from harness.errors import HarnessError, TargetDiedError
from harness.launch.process import ChildProcess, stop_all
from harness.launch.stack import BUNDLED_RELAYS
from harness.launch.supervisor import Supervisor
from harness.launch.targets_spec import UserTargets, format_requests
from harness.load.streaming_user import format_targets, parse_targets
from harness.load.upstream_behaviour import UpstreamBehaviour
from harness.plugin.flags import bundled_relays, check_before_launch, recorded_flags
from harness.plugin.records import RecordQueue
from harness.plugin.samplers import start_samplers
from harness.plugin.signals import Interrupts
from harness.plugin.targets import RunTargets, start_targets
from harness.plugin.terminal import Terminal
from harness.plugin.upstream_defaults import set_upstream_defaults
from harness.plugin.web_ui import check_exposure, install_web_ui
from harness.runfolder import RunFolder

__all__ = ["HarnessPlugin"]

log = logging.getLogger("harness")

WATCH_INTERVAL_S = 0.5
STOP_GRACE_S = 3.0


class HarnessPlugin:
    """The harness's state in one Locust process (master, local or worker)."""

    def __init__(self, environment: Any, runner: Any, web_ui: Any, ui_actions: dict[str, Any] | None = None) -> None:
        self.environment = environment
        self.ui_actions = ui_actions or {}
        """The options a web UI start form may change (harness.plugin.web_ui)."""
        self.runner = runner
        self.web_ui = web_ui
        self.options = environment.parsed_options
        self.is_worker = isinstance(runner, WorkerRunner)
        self.folder: RunFolder | None = None
        self.run_targets = RunTargets()
        self.sampler: Any = None
        self.shape_finished = False
        self.target_died = False
        self.stopped = False
        self._finished = False
        self._test_running = False
        self._phase: str | None = None
        self._phases_seen = 0
        self.report_path: Path | None = None
        self.reports: dict[str, Path] = {}
        """Every report.html written in this process, by run folder name, oldest first (one per web UI test)."""
        self._tests = 0
        self._folder_ready = False
        """Web UI: the current test has its own run folder (opened by its first phase or its test_start)."""
        self._greenlets: list[gevent.Greenlet] = []
        self.supervisor: Supervisor | None = None
        self.terminal: Terminal | None = None
        self._sampler_lock = gevent.lock.Semaphore()
        self._summary_greenlet: gevent.Greenlet | None = None
        self.starting = False
        self.interrupts = Interrupts(self._on_signal, self._needs_interrupt)
        self.records = RecordQueue(runner, is_worker=self.is_worker, folder=self._open_folder)

    def _open_folder(self) -> RunFolder | None:
        return None if self._finished else self.folder

    # lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Everything ``init`` does: run folder, stack, watcher (master/local); record forwarding (workers)."""
        self._greenlets.append(gevent.spawn(self.records.loop))
        if self.is_worker:
            return
        self.interrupts.install()
        self.starting = True
        try:
            self._start()
        finally:
            self.starting = False

    def _start(self) -> None:
        options = self.options
        scenario = Path(str(options.locustfile or "run").split(",")[0]).stem
        plain = parse_targets(options.target_url) if options.target_url else ()
        relays = bundled_relays(options)
        # Checked before the run folder exists and before anything is launched: a bad combination exits 2.
        user = UserTargets.from_options(options, [*(t.name for t in plain), *relays])
        check_before_launch(options)
        if not relays and not plain and not user.any:
            relays = BUNDLED_RELAYS  # nothing named: the demo's bundled relays
        self.run_targets = RunTargets(plain=plain, user=user)
        self.terminal = Terminal(self.environment, self._open_folder)
        self.folder = RunFolder.create(Path(options.run_dir).resolve(), scenario, {"flags": recorded_flags(options)})
        atexit.register(self.stop)
        if relays or user.launches:
            self.supervisor = Supervisor()  # before anything is launched: it cleans up even after a SIGKILL
        try:
            # Probe snapshots only under --run-dir: the web UI's later tests get folders of their own there.
            start_targets(self.run_targets, relays, options, self.folder.logs, self.folder.path.parent)
        except BaseException:
            self.folder.event("start_failed", detail=str(sys.exc_info()[1]))
            self.stop(status="interrupted")
            raise
        for name, warning in self.run_targets.warnings:
            self.folder.event("attach_warning", name, warning)
        self.folder.update_meta(targets=self.run_targets.described())
        options.harness_targets = format_targets(self.run_targets.loaded())
        options.harness_requests = format_requests(user.requests)
        options.harness_upstream_query = ""
        if self.run_targets.launched:
            self._greenlets.append(gevent.spawn(self._watch))
        if self.web_ui is not None:
            exposure = check_exposure(options)
            if exposure:
                log.warning("%s", exposure)
            if not self.environment.host:  # preset: Locust's host field means nothing here (targets are the plugin's)
                self.environment.host = ", ".join(f"{t.name}={t.url}" for t in self.run_targets.loaded())
            install_web_ui(self.environment, self._open_folder, lambda: dict(self.reports), self.ui_actions)

    def _on_signal(self, name: str) -> None:
        self.environment.process_exit_code = self.interrupts.exit_code
        if self.folder is not None and not self._finished:
            self.folder.event("interrupted", detail=name)
            self.folder.update_meta(interrupted_by=name)

    def _needs_interrupt(self) -> bool:
        """Whether SIGTERM must be turned into Ctrl-C's KeyboardInterrupt (Locust has no handler of its own yet)."""
        shape = getattr(self.runner, "shape_greenlet", None)
        return self.starting or bool(self.options.headless and shape is not None and not shape.dead)

    def on_test_start(self) -> None:
        if self.is_worker or self.folder is None:
            return
        if self.web_ui is not None and not self._folder_ready:
            self._folder_for_test()
        self.folder.event("test_start")
        self._set_upstream("test_start", None)
        self._test_running = True
        self.sampler = start_samplers(self.folder, self.run_targets, self.options)
        if self.terminal is not None and self.terminal.periodic:
            self._summary_greenlet = gevent.spawn(self.terminal.loop)

    def on_test_stop(self) -> None:
        self.records.flush()
        if self.is_worker or self.folder is None or not self._test_running:
            return
        self._test_running = False
        if self._summary_greenlet is not None:
            self._summary_greenlet.kill(block=False)
            self._summary_greenlet = None
        self._end_phase()
        self._stop_sampler()
        self.folder.event("test_stop")
        if self.web_ui is not None:
            self._folder_ready = False  # the next test's first phase or test_start opens its folder
            # The stack stays for the next test, which gets a run folder of its own; this test's folder is finished
            # and its report written now. Headless runs write theirs once the stack is stopped (stop()).
            self._finish_folder("complete" if self.shape_finished and not self.target_died else "stopped")

    def _folder_for_test(self) -> None:
        """Web UI: each test its own run folder, recording the options as the start form left them. The first
        test uses the folder made at launch (it holds the stack's logs); later ones point to it."""
        assert self.folder is not None
        self._tests += 1
        flags = recorded_flags(self.options)
        if self._tests > 1:
            first = self.folder
            meta = first.read_meta()
            scenario = str(meta.get("scenario", "run"))
            self.folder = RunFolder.create(
                first.path.parent,
                scenario,
                {"flags": flags, "targets": meta.get("targets", []), "stack_logs": str(first.path / "logs")},
            )
            self._finished = False
        self.folder.update_meta(flags=flags, test=self._tests, started_at=time.time())
        self._folder_ready = True
        self.shape_finished = False
        self._phases_seen = 0
        self._phase = None

    def _finish_folder(self, status: str) -> None:
        assert self.folder is not None
        self.folder.finish(status)
        self._finished = True
        log.info("run folder: %s", self.folder.path)
        self._write_report()

    def _set_upstream(self, phase: str, behaviour: UpstreamBehaviour | None) -> None:
        assert self.folder is not None
        set_upstream_defaults(self.folder, self.run_targets.upstream_urls, self.options, phase, behaviour)

    def on_phase(self, name: str, at: float, upstream: UpstreamBehaviour | None = None) -> None:
        if self.folder is None:
            return
        if self.web_ui is not None and not self._folder_ready:
            # Locust's shape ticks (and fires the first phase) before test_start: this test's folder comes first.
            self._folder_for_test()
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
        self._set_upstream(name, upstream)

    def _end_phase(self, at: float | None = None) -> None:
        if self._phase is not None and self.folder is not None:
            self.folder.event("phase_end", self._phase, t=at)
        self._phase = None

    def _stop_sampler(self) -> None:
        """Stop the samplers (end records, upstream per-stream records, end snapshots). A second caller waits for
        the first to finish: the stop must never finish the folder while the samplers still write to it."""
        with self._sampler_lock:
            sampler = self.sampler
            if sampler is not None:
                try:
                    sampler.stop()
                finally:
                    self.sampler = None

    def stop(self, status: str | None = None) -> None:
        """Flush, stop samplers and the stack, finish the run folder. Safe to call more than once."""
        if self.stopped:
            return
        self.stopped = True
        for greenlet in [*self._greenlets, *([self._summary_greenlet] if self._summary_greenlet else [])]:
            greenlet.kill(block=False)
        try:
            self.records.flush()
            self._stop_sampler()
        finally:
            if self.run_targets.launched:
                log.info("stopping the launched targets")
                stop_all(self.run_targets.launched, grace_s=STOP_GRACE_S)
            if self.supervisor is not None:
                self.supervisor.close()  # and whatever the launched commands left behind
            if self.folder is not None and not self._finished:  # (a web UI test's folder is finished at its stop)
                self._end_phase()
                if status is None:
                    status = "complete" if self.shape_finished and not self.target_died else "interrupted"
                self._finish_folder(status)

    def _write_report(self) -> None:
        """Analyse the run folder and write summary.json and report.html; print the report's path."""
        assert self.folder is not None
        if not self.folder.file("events").exists():
            return  # nothing was measured (the stack never started)
        from harness.gate.config import configured_limits
        from harness.report.html import write_report  # pandas and plotly load only where reports are written

        try:  # judged with the gate's limits, so the report says what the gate says
            limits = configured_limits(str(getattr(self.options, "gate_config", "") or ""))
            if self.web_ui is not None:
                # CPU work (pandas, plotly) in a native thread: the web UI keeps answering while a report is written.
                pool = gevent.get_hub().threadpool
                self.report_path = pool.spawn(write_report, self.folder.path, limits).get(timeout=300)
            else:
                self.report_path = write_report(self.folder.path, limits)
        except HarnessError as error:
            log.error("no report: %s", error)
            return
        self.reports[self.folder.path.name] = self.report_path
        log.info("report: %s", self.report_path)
        if self.terminal is not None and not getattr(self.options, "gate", False):
            self.terminal.verdicts(self.folder)  # (with --gate, the gate prints the same lines)

    # targets dying -------------------------------------------------------------------------------------------
    def _watch(self) -> None:
        while True:
            gevent.sleep(WATCH_INTERVAL_S)
            for child in self.run_targets.launched:
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
        # In a greenlet of its own, which the final stop never kills: the test's stop (samplers, upstream records,
        # end snapshots) runs there and must complete; the stop waits for it (_stop_sampler).
        gevent.spawn(self._end_test)

    def _end_test(self) -> None:
        self.runner.quit()
        if self.web_ui is not None:
            self.web_ui.stop()
