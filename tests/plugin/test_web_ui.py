"""The web UI as a person uses it, in headless Chromium: two tests in one session, each with its own run folder and
report, every link on the live page and in Locust's Download Data tab fetched; the start form cannot change what
is fixed at launch; a web UI others can reach without a login is warned about."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser import launch, needs_chromium, watch_errors
from tests.support import REPO, SHORT, assert_all_gone, free_port, locust, wait_until

REPORTS = "/stream-harness/reports/"


def _post(url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _report_names(base: str) -> list[str]:
    try:
        with urllib.request.urlopen(base + REPORTS, timeout=10) as response:
            page = response.read().decode()
    except OSError:  # busy (two cores shared by the whole suite): asked again
        return []
    return [part.split('"', 1)[0] for part in page.split(f'href="{REPORTS}')[1:]]


@pytest.mark.slow
@needs_chromium
def test_two_tests_in_one_session_each_get_a_folder_a_report_and_working_links(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # the web UI's flows, not a scenario's phases: tests/short_scenario.py, about 7 s a test (the bundled scenario
    # takes 15 s at any scale: each of its 8 phases lasts a second at least, its churn 8 s)
    args = ("-f", SHORT, "--web-host", "127.0.0.1", "--web-port", str(port))
    with locust(tmp_path, *args) as run:
        run.wait_for("the web UI", lambda: urllib.request.urlopen(base + REPORTS, timeout=2).status == 200, 60)
        assert "WITHOUT --web-login" not in run.output()  # loopback: no warning
        # The start form cannot change what is fixed at launch, nor pass what the command line would refuse.
        for form in (
            {"target_url": "evil=http://127.0.0.1:9"},
            {"gate_junit": "/tmp/stream-harness-junit.xml"},
            {"harness_targets": "evil=http://127.0.0.1:9"},
            {"scenario_scale": "inf"},
            {"stream_api": "websocket"},
            {"host": "http://127.0.0.1:9"},  # the form's host field shows the targets; they are fixed at launch
        ):
            status, answer = _post(base + "/swarm", {"user_count": "1", "spawn_rate": "1", **form})
            assert status == 400, (form, answer)
            assert answer["success"] is False
            assert next(iter(form)).replace("_", "-") in answer["message"] or next(iter(form)) in answer["message"]
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_page()
                errors = watch_errors(page)
                page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
                for test in (1, 2):
                    page.goto(base + "/")
                    if test == 2:
                        page.get_by_role("button", name="New").click()
                    page.get_by_role("button", name="Start").click()
                    assert wait_until(lambda n=test: len(_report_names(base)) >= n, 90), run.output()[-3000:]  # type: ignore[misc]
                # every link on the live page and in the Download Data tab answers
                hrefs: set[str] = set()
                for url in (base + "/stream-harness/live", base + "/?tab=reports", base + REPORTS):
                    page.goto(url)
                    page.wait_for_load_state("networkidle")
                    if "tab=reports" in url:
                        page.locator('a[href="/stream-harness/live"]').wait_for(timeout=20_000)
                    if url.endswith("/live"):
                        page.wait_for_selector("#report-link", timeout=30_000)
                    hrefs |= set(page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"))
                local = sorted(h for h in hrefs if h.startswith(base))
                assert any("/stream-harness/reports/" in h for h in local)
                for href in local:
                    answer = page.request.get(href)
                    assert answer.status == 200, (href, answer.status)
            finally:
                browser.close()
        names = _report_names(base)
        assert len(names) == 2
        folders = sorted(path for path in run.run_dir.iterdir() if path.is_dir())
        assert sorted(path.name for path in folders) == sorted(names)  # one run folder per test, each reported
        for folder in folders:
            meta = json.loads((folder / "meta.json").read_text())
            assert meta["status"] == "complete", meta["status"]
            with (folder / "events.csv").open(newline="") as file:
                rows = list(csv.DictReader(file))
            starts = [row for row in rows if row["kind"] == "test_start"]
            assert len(starts) == 1  # its own test only
            phases = [row["name"] for row in rows if row["kind"] == "phase_start"]
            assert phases == ["warm-up", "load", "drain"], (folder.name, phases)  # its own phases, each once
            with urllib.request.urlopen(f"{base}{REPORTS}{folder.name}", timeout=10) as response:
                assert response.status == 200
                assert folder.name in response.read().decode()
        assert not Path("/tmp/stream-harness-junit.xml").exists()
        assert errors == []
        os.kill(run.proc.pid, signal.SIGTERM)
        run.wait(40)
        assert_all_gone(run.tag)


def test_a_web_ui_beyond_loopback_without_login_is_warned_about() -> None:
    script = (
        "import argparse\n"
        "from harness.plugin.web_ui import check_exposure\n"
        "def o(**k): return argparse.Namespace(headless=False, worker=False, web_port=8089, web_login=False, **k)\n"
        "print(repr(check_exposure(o(web_host=''))))\n"
        "print(repr(check_exposure(o(web_host='10.1.2.3'))))\n"
        "print(repr(check_exposure(o(web_host='127.0.0.1'))))\n"
        "print(repr(check_exposure(argparse.Namespace(headless=False, worker=False, web_port=1, web_login=True,"
        " web_host=''))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert "every interface" in out[0]
    assert "WITHOUT --web-login" in out[0]
    assert "10.1.2.3" in out[1]
    assert out[2:] == ["None", "None"]
