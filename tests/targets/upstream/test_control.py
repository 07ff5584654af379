"""The control route: PUT /__harness/defaults with the bearer token sets the defaults; anything else is 403."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.targets.upstream.conftest import CONTROL_TOKEN, DEFAULTS

AUTH = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


@pytest.mark.asyncio
async def test_defaults_apply_to_new_streams_and_an_empty_object_restores_the_flags(
    client: TestClient[Any, Any],
) -> None:
    response = await client.put("/__harness/defaults", json={"tokens": 2, "first_token_delay": 0.01}, headers=AUTH)
    assert response.status == 200
    assert (await response.json())["tokens"] == 2
    assert (await (await client.get("/__harness/defaults")).json())["first_token_delay"] == 0.01
    await (await client.get("/v1/stream")).read()
    await (await client.get("/v1/stream?tokens=3")).read()  # a stream's own setting wins
    await client.put("/__harness/defaults", json={}, headers=AUTH)
    await (await client.get("/v1/stream")).read()
    records = await (await client.get("/__harness/streams")).json()
    assert [record["tokens_sent"] for record in records] == [2, 3, DEFAULTS.tokens]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": CONTROL_TOKEN}])
@pytest.mark.asyncio
async def test_a_wrong_token_is_403_and_logged(
    client: TestClient[Any, Any], headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="targets"):
        response = await client.put("/__harness/defaults", json={"tokens": 1}, headers=headers)
    assert response.status == 403
    assert "refused" in (await response.json())["error"]["message"]
    assert any("refused" in record.getMessage() for record in caplog.records)
    assert (await (await client.get("/__harness/defaults")).json())["tokens"] == DEFAULTS.tokens


@pytest.mark.parametrize(
    ("body", "words"), [({"tokens": -1}, "tokens"), ({"colour": 1}, "'colour'"), ([1], "JSON object")]
)
@pytest.mark.asyncio
async def test_bad_defaults_are_400_naming_the_setting(client: TestClient[Any, Any], body: Any, words: str) -> None:
    response = await client.put("/__harness/defaults", json=body, headers=AUTH)
    assert response.status == 400
    assert words in (await response.json())["error"]["message"]


@pytest.mark.asyncio
async def test_an_upstream_started_without_a_token_refuses_every_call(aiohttp_client: Any) -> None:
    from targets.common import SocketTuning
    from targets.upstream import create_app

    client = await aiohttp_client(create_app(DEFAULTS, SocketTuning(4096, 4096)))
    response = await client.put("/__harness/defaults", json={}, headers={"Authorization": "Bearer "})
    assert response.status == 403
    assert "STREAM_HARNESS_CONTROL_TOKEN" in (await response.json())["error"]["message"]
