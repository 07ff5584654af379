"""The harness in Locust's web UI: its routes, its links, and what a start form may change.

- **Routes** (``/stream-harness/...``): the live chart page and its data (content: harness.report.live_view and
  live_page), every report of this session (``/stream-harness/reports/``, one per test, each test with its own run
  folder), the latest report (``/stream-harness/report``), plotly served from the installed package.
- **Links**: Locust renders extended table cells as text, so the links go where it renders links: its
  "Download Data" tab (``extended_csv_files``).
- **Tabs**: "Server side" (harness.report.live_view's rows) and "Stream timings": per target, time to first byte,
  to first token and the mean token gap as percentiles of the streams so far (harness.analyse.clients, the same
  computation as summary.json's), while Locust's own table counts one request per stream.
- **The start form** may change only what the harness reads again at each test start: the options shown in the
  web UI (``include_in_web_ui``) and Locust's own user count, spawn rate, host and run time. Anything else (launch-only
  flags, the plugin's internal options, paths it writes) is refused with 400 and one line naming it; a value is
  checked by its flag's own parser, so the form cannot pass what the command line would refuse.
- **Exposure**: a web UI bound beyond loopback without ``--web-login`` gets a loud warning.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.report.live_view import CHARTS_PATH, DATA_PATH, LIVE_PATH, TAB_KEY, TABLE_STRUCTURE, LiveData
from harness.runfolder import RunFolder

__all__ = ["REPORTS_PATH", "check_exposure", "checked_form", "install_web_ui", "timing_rows"]

log = logging.getLogger("harness")

REPORTS_PATH = "/stream-harness/reports/"
LATEST_REPORT_PATH = "/stream-harness/report"
TIMINGS_KEY = "stream-harness-timings"
LOCUST_FORM_FIELDS = frozenset(
    {"user_count", "spawn_rate", "host", "run_time", "profile", "user_classes", "shape_class"}
)
"""Locust's own start-form fields (the harness's users read their targets from the plugin, never from host)."""
_TIMINGS_STRUCTURE = [
    {"key": "target", "title": "Target"},
    {"key": "streams", "title": "Streams"},
    {"key": "ttfb", "title": "TTFB p50 / p95 / p99 (ms)"},
    {"key": "ttft", "title": "TTFT p50 / p95 / p99 (ms)"},
    {"key": "gap", "title": "Mean token gap p50 / p95 / p99 (ms)"},
    {"key": "max_gap", "title": "Longest token gap p50 / p95 / p99 (ms)"},
]
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def check_exposure(options: Any) -> str | None:
    """The warning for a web UI others can reach without a login, or None."""
    if getattr(options, "headless", False) or getattr(options, "worker", False):
        return None
    host = str(getattr(options, "web_host", "") or "")
    if host in _LOOPBACK or getattr(options, "web_login", False):
        return None
    shown = host if host and host != "*" else "every interface"
    return (
        f"THE WEB UI LISTENS ON {shown} WITHOUT --web-login: anyone who can reach port "
        f"{getattr(options, 'web_port', '?')} can start tests and read the reports. Use --web-host 127.0.0.1 "
        "(or add --web-login)."
    )


def checked_form(
    form: Any, options: Any, ui_actions: dict[str, Any], host: str | None = None
) -> tuple[str | None, dict[str, list[str]]]:
    """(why a POST /swarm form must be refused, in one line, or None; the form with the harness's values in the form
    Locust's own conversion, ``type(current)(text)``, takes: ``4KiB`` becomes ``4096``)."""
    checked: dict[str, list[str]] = {}
    for key in form:
        values = form.getlist(key) if hasattr(form, "getlist") else [form[key]]
        checked[key] = list(values)
        if key == "host" and host and values and values[-1] != host:
            return f"host cannot be changed after launch: the targets are {host}", checked
        if key in LOCUST_FORM_FIELDS:
            continue
        action = ui_actions.get(key)
        if action is None:
            if hasattr(options, key):
                return f"{key} cannot be changed after launch (restart Locust with the new value)", checked
            continue  # not an option at all: Locust ignores it too
        text = values[-1] if values else ""
        if action.choices is not None and text not in action.choices:
            choices = ", ".join(map(str, action.choices))
            return f"{action.option_strings[0]} must be one of {choices}, but got {text!r}", checked
        if callable(action.type):
            try:
                value = action.type(text)
            except (argparse.ArgumentTypeError, TypeError, ValueError) as error:
                return str(error), checked
            checked[key] = [repr(value) if isinstance(value, float) else str(value)]
    return None, checked


def _percentile_text(figures: Any) -> str:
    if figures is None or not figures.count:
        return ""
    return " / ".join(f"{value:.0f}" for value in (figures.p50_ms, figures.p95_ms, figures.p99_ms))


def timing_rows(folder: RunFolder | None) -> list[dict[str, Any]]:
    """Rows of the Stream timings tab: per target, from the run folder's client records so far."""
    if folder is None or not folder.file("clients").exists():
        return []
    import pandas as pd

    from harness.analyse.clients import client_figures, percentiles

    try:
        clients = pd.read_csv(folder.file("clients"))
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return []
    rows = []
    for target, group in sorted(clients.groupby("target"), key=lambda item: str(item[0])):
        figures = client_figures(group)
        rows.append(
            {
                "target": str(target),
                "streams": figures.streams,
                "ttfb": _percentile_text(figures.ttfb),
                "ttft": _percentile_text(figures.ttft),
                "gap": _percentile_text(figures.token_gap),
                "max_gap": _percentile_text(percentiles(group["max_token_gap"])) if "max_token_gap" in group else "",
            }
        )
    return rows


def install_web_ui(
    environment: Any,
    folder: Callable[[], RunFolder | None],
    reports: Callable[[], dict[str, Path]],
    ui_actions: dict[str, Any],
) -> None:
    """Add the harness's tabs, links, routes and start-form guard to ``environment.web_ui`` (no-op headless).

    ``folder`` gives the current test's run folder; ``reports`` every report.html of this session by run folder
    name, oldest first; ``ui_actions`` the parser actions the start form may set, by dest.
    """
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return
    from flask import Response, jsonify, request, send_file
    from werkzeug.datastructures import ImmutableMultiDict

    state: dict[str, Any] = {}

    def data() -> LiveData | None:
        current = folder()
        if current is None:
            return None
        live = state.get("live")
        if live is None or live.folder.path != current.path:
            live = state["live"] = LiveData(current)
        live.refresh()
        return live

    def latest() -> str | None:
        names = list(reports())
        return f"{REPORTS_PATH}{names[-1]}" if names else None

    web_ui.template_args["extended_tabs"] = [
        {"title": "Server side", "key": TAB_KEY},
        {"title": "Stream timings", "key": TIMINGS_KEY},
    ]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": TABLE_STRUCTURE},
        {"key": TIMINGS_KEY, "structure": _TIMINGS_STRUCTURE},
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": LIVE_PATH, "title": "stream-harness: live charts of the running test"},
        {"href": REPORTS_PATH, "title": "stream-harness: every test's report (one run folder per test)"},
        {"href": LATEST_REPORT_PATH, "title": "stream-harness: the latest test's report"},
    ]

    @web_ui.app.before_request  # type: ignore[untyped-decorator]
    def guard_swarm() -> Any:
        if request.path != "/swarm" or request.method != "POST":
            return None
        refusal, checked = checked_form(request.form, environment.parsed_options, ui_actions, environment.host)
        if refusal is None:
            request.form = ImmutableMultiDict([(key, value) for key, values in checked.items() for value in values])
            return None
        log.warning("refused a start form: %s", refusal)
        return jsonify({"success": False, "message": refusal, "host": environment.host}), 400

    @web_ui.app.after_request  # type: ignore[untyped-decorator]
    def add_tables(response: Any) -> Any:
        # Locust's UI polls /stats/requests; its extended tabs read "extended_stats" from that answer.
        if request.path != "/stats/requests" or response.status_code != 200 or not response.is_json:
            return response
        live = data()
        payload = response.get_json()
        payload["extended_stats"] = [
            {"key": TAB_KEY, "data": live.table_rows() if live else []},
            {"key": TIMINGS_KEY, "data": timing_rows(folder())},
        ]
        response.set_data(json.dumps(payload))
        return response

    @web_ui.app.route(LIVE_PATH)  # type: ignore[untyped-decorator]
    def live_chart_page() -> Any:
        from harness.report.live_page import live_page

        return Response(live_page(CHARTS_PATH, DATA_PATH), mimetype="text/html")

    @web_ui.app.route(CHARTS_PATH)  # type: ignore[untyped-decorator]
    def live_charts() -> Any:
        from harness.report.live_page import LiveCharts

        current = folder()
        if current is None:
            return Response(json.dumps({"charts": [], "waiting": "no test started yet"}), mimetype="application/json")
        charts = state.get("charts")
        if charts is None or charts.folder != current.path:
            charts = state["charts"] = LiveCharts(current.path)
        # Building the charts is CPU work (pandas, plotly): a native thread keeps the gevent loop, and so the users'
        # timestamps, running meanwhile.
        import gevent

        answer = gevent.get_hub().threadpool.spawn(charts.answer).get(timeout=60)
        return Response(answer, mimetype="application/json")

    @web_ui.app.route("/stream-harness/plotly.js")  # type: ignore[untyped-decorator]
    def plotly_js() -> Any:
        from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

        return Response(get_plotlyjs(), mimetype="application/javascript", headers={"Cache-Control": "max-age=3600"})

    @web_ui.app.route(DATA_PATH)  # type: ignore[untyped-decorator]
    def live_json() -> Any:
        try:
            since = float(request.args.get("since", "0"))
        except ValueError:
            return Response(json.dumps({"error": "since must be a number"}), status=400, mimetype="application/json")
        live = data()
        payload = live.as_json(since) if live else {"start": None, "series": {}}
        payload["report"] = latest()
        return Response(json.dumps(payload), mimetype="application/json")

    @web_ui.app.route(REPORTS_PATH)  # type: ignore[untyped-decorator]
    def report_index() -> Any:
        from html import escape

        items = "".join(
            f'<li><a href="{REPORTS_PATH}{escape(name)}">{escape(name)}</a></li>' for name in reversed(list(reports()))
        )
        body = f"<ol reversed>{items}</ol>" if items else "<p>No test has stopped yet: a report is written then.</p>"
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>stream-harness reports</title>"
            "<link rel='icon' href='data:,'></head><body>"
            f"<h1>Reports of this session</h1>{body}<p><a href='/'>Locust</a> · <a href='{LIVE_PATH}'>live charts"
            "</a></p></body></html>"
        )
        return Response(page, mimetype="text/html")

    @web_ui.app.route(f"{REPORTS_PATH}<name>")  # type: ignore[untyped-decorator]
    def report_of(name: str) -> Any:
        path = reports().get(name)  # only this session's folders: the name is never a path
        if path is None or not path.is_file():
            return Response(f"no report named {name!r} in this session", status=404, mimetype="text/plain")
        return send_file(path.resolve(), mimetype="text/html")

    @web_ui.app.route(LATEST_REPORT_PATH)  # type: ignore[untyped-decorator]
    def latest_report() -> Any:
        known = reports()
        if not known:
            return Response("no report yet: it is written when a test stops", status=404, mimetype="text/plain")
        return send_file(list(known.values())[-1].resolve(), mimetype="text/html")
