"""API names: the five there are, one line naming a wrong one; a client API other than the upstream's (a
translating gateway) under a real Locust run."""

from __future__ import annotations

import json
import shlex
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.load.apis import API_NAMES, DEFAULT_API, TERMINATORS, parse_api
from tests.support import DISCONNECTS, assert_all_gone, locust

PY = shlex.quote(sys.executable)


def test_names_and_their_terminators() -> None:
    assert API_NAMES == ("openai-chat", "openai-responses", "anthropic", "sse", "chunked")
    assert DEFAULT_API == "openai-chat"
    assert set(TERMINATORS) == set(API_NAMES)
    assert [parse_api(name) for name in API_NAMES] == list(API_NAMES)


def test_an_unknown_api_names_the_value_and_the_choices() -> None:
    with pytest.raises(UsageError) as caught:
        parse_api("openai", what="--stream-api")
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "--stream-api must be one of openai-chat, openai-responses, anthropic, sse, chunked, but got 'openai'"
    )


@pytest.mark.slow
def test_a_translating_gateway_is_judged_per_stream_through_the_tag(tmp_path: Path) -> None:
    # Anthropic to its clients, OpenAI to its upstream, nothing forwarded but the prompt: the clients speak
    # anthropic, the upstream answers chat completions, and every stream is matched by the tag in the prompt.
    gateway = (
        f"{PY} -m uvicorn --host 127.0.0.1 --port {{port}} --no-access-log tests.targets_apps.anthropic_gateway:app"
    )
    with locust(
        tmp_path, "-f", DISCONNECTS, "--headless", "--scenario-scale", "0.1", "--upstream-rate", "500",
        "--launch", f"gw={gateway}", "--request-api", "gw=anthropic",
    ) as run:  # fmt: skip
        assert run.wait(90) == 0, run.output()[-3000:]
        clients = run.table("clients")
        upstream = {row["id"]: row for row in run.table("upstream_streams")}
        summary = json.loads((run.folder() / "summary.json").read_text())
    completed = [row for row in clients if row["outcome"] == "completed"]
    assert completed, Counter(row["outcome"] for row in clients)
    assert {row["outcome"] for row in clients} <= {"completed", "left"}, Counter(row["error"] for row in clients)
    assert all(int(row["tokens"]) == 200 for row in completed), completed[:3]  # content deltas, translated
    assert all(float(row["first_token"]) > float(row["first_byte"]) for row in completed)
    reached = [row for row in clients if row["stream_id"] in upstream]
    assert len(reached) >= len([row for row in clients if row["first_byte"]]) * 0.9
    assert {upstream[row["stream_id"]]["id_channel"] for row in reached} == {"prompt"}
    assert {upstream[row["stream_id"]]["api"] for row in reached} == {"openai-chat"}
    assert summary["targets"]["gw"]["upstream"]["basis"] == "id:prompt"
    states = {c["check"]: c["state"] for c in summary["checks"] if c["target"] == "gw"}
    assert states["leaked_streams"] == "pass", summary["checks"]
    assert_all_gone(run.tag)


def test_an_unknown_api_on_the_command_line_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with locust(tmp_path, "-f", DISCONNECTS, "--headless", "--stream-api", "openai") as run:
        assert run.wait(30) == 2
        lines = [line for line in run.output().splitlines() if "openai" in line and "error" in line]
    assert len(lines) == 1, run.output()
    assert lines[0].endswith(
        "error: argument --stream-api: --stream-api must be one of openai-chat, openai-responses, "
        "anthropic, sse, chunked, but got 'openai'"
    )
