"""The rate limit per token: a burst, then 429 with Retry-After as a problem document, for
that token only, before any lookup; the bucket fills again with time."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from api.ratelimit import RateLimiter, TooManyRequests
from tests.api.conftest import Api, ApiUsers, running_api
from tests.fixtures.database import TestDatabase

BURST = 5
PER_S = 0.05  # one request every 20 s after the burst: no refill while a test runs


@pytest.fixture(scope="module")
def limited(database: TestDatabase, api_users: ApiUsers,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    # One worker: each worker process counts a token's requests for itself (docs/api.md).
    with running_api(database, api_users, tmp_path_factory.mktemp("api"),
                     MES_API__WORKERS="1", MES_API__RATE_LIMIT_PER_S=str(PER_S),
                     MES_API__RATE_LIMIT_BURST=str(BURST)) as api:
        yield api


def test_a_token_past_its_burst_gets_429_with_retry_after(limited: Api) -> None:
    statuses = [limited.call("a_viewer", "GET", "/v1/machines").status_code
                for _ in range(BURST)]
    assert statuses == [200] * BURST
    r = limited.call("a_viewer", "GET", "/v1/machines")
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert 1 <= int(r.headers["retry-after"]) <= 1 / PER_S
    assert r.json()["title"] == "Too many requests" and r.json()["status"] == 429
    assert "retry in" in r.json()["detail"]
    # Another token has a bucket of its own.
    assert limited.call("a_admin", "GET", "/v1/machines").status_code == 200


def test_unknown_tokens_are_limited_before_any_lookup(limited: Api) -> None:
    header = {"Authorization": "Bearer mes_" + "0" * 32 + "_nosuchsecret"}
    statuses = [limited.call(None, "GET", "/v1/pm/tasks", headers=header).status_code
                for _ in range(BURST + 1)]
    assert statuses == [401] * BURST + [429]


def test_every_operation_documents_429(limited: Api) -> None:
    spec = httpx.get(limited.base_url + "/openapi.json").json()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if path.startswith("/v1/"):
                assert "429" in op["responses"], (method, path)


def test_the_bucket_fills_again_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_s=2, burst=2, clock=lambda: now[0])
    limiter.check("mes_a_x")
    limiter.check("mes_a_y")  # the same token id: the same bucket
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("mes_a_z")
    assert refused.value.headers == {"Retry-After": "1"}
    limiter.check("mes_b_x")  # another token
    now[0] = 0.5  # one request's worth at 2 a second
    limiter.check("mes_a_x")
    with pytest.raises(TooManyRequests):
        limiter.check("mes_a_x")
    RateLimiter(per_s=0, burst=1).check("mes_a_x")  # 0: no limit
    RateLimiter(per_s=0, burst=1).check("mes_a_x")
