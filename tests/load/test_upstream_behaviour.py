"""UpstreamBehaviour: checked values by the control route's names; put_defaults against a real fake upstream, with
the right token, a wrong one, and nobody listening."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.launch.process import ChildProcess, LaunchSpec
from harness.load.upstream_behaviour import CONTROL_TOKEN_ENV, UpstreamBehaviour, control_token, put_defaults
from tests.support import free_port


def test_settings_are_the_fields_given_by_the_query_s_names() -> None:
    behaviour = UpstreamBehaviour(tokens=1_000_000, first_token_delay_s=600)
    assert behaviour.settings() == {"tokens": 1_000_000, "first_token_delay": 600}
    assert UpstreamBehaviour().settings() == {}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"tokens": -1}, "UpstreamBehaviour.tokens must be a whole number from 0 to 1e+06, but got -1"),
        ({"tokens": 2.5}, "tokens"),
        ({"token_bytes": 0}, "token_bytes"),
        ({"rate": float("nan")}, "rate"),
        ({"header_delay_s": 601}, "header_delay"),
        ({"first_token_delay_s": "2"}, "first_token_delay"),
    ],
)
def test_bad_values_name_the_field_and_the_value(fields: dict[str, object], words: str) -> None:
    with pytest.raises(UsageError, match=words.replace("+", r"\+")):
        UpstreamBehaviour(**fields)  # type: ignore[arg-type]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    argv = [sys.executable, "-m", "targets.upstream", "--port", "0", "--tokens", "7"]
    child = ChildProcess(LaunchSpec("upstream", argv, env={CONTROL_TOKEN_ENV: control_token()}), tmp_path / "up.log")
    try:
        yield child.wait_ready(15)
    finally:
        child.stop(3.0)


def defaults(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/__harness/defaults", timeout=5) as response:
        result: dict[str, float] = json.load(response)
        return result


def test_put_defaults_sets_them_and_says_which_upstream_refused(upstream: str) -> None:
    assert put_defaults([upstream], UpstreamBehaviour(tokens=3, rate=0).settings(), control_token()) == []
    assert (defaults(upstream)["tokens"], defaults(upstream)["rate"]) == (3, 0)
    (refused,) = put_defaults([upstream], {"tokens": 9}, "wrong")
    assert refused.startswith(f"upstream {upstream} refused its defaults: HTTP 403")
    assert defaults(upstream)["tokens"] == 3
    nobody = f"http://127.0.0.1:{free_port()}"
    (unreachable,) = put_defaults([nobody], {}, control_token(), timeout_s=2)
    assert unreachable.startswith(f"upstream {nobody} did not take its defaults")
    assert put_defaults([upstream], {}, control_token()) == []
    assert defaults(upstream)["tokens"] == 7  # {} restores the flags' values
