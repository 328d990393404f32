"""Authentication: a bearer token resolved through the definer function, or 401; problem
documents; the service's own endpoints; no token ever in the access log."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import Api
from tests.fixtures.database import TestDatabase
from tests.support.wait import wait_until

PROBLEM = "application/problem+json"


def test_no_token_is_401_with_a_problem_document(api: Api) -> None:
    r = api.call(None, "GET", "/v1/machines")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"] == "Bearer"
    body = r.json()
    assert body["status"] == 401 and body["title"] == "Not authenticated"
    assert "Authorization: Bearer" in body["detail"]


@pytest.mark.parametrize("token", [
    "not-a-token",
    "mes_" + "0" * 32 + "_" + "A" * 43,  # the right shape, no such token
    "Basic dXNlcjpwdw==",  # another scheme
])
def test_bad_tokens_are_401(api: Api, token: str) -> None:
    header = token if token.startswith("Basic") else f"Bearer {token}"
    r = api.call(None, "GET", "/v1/machines", headers={"Authorization": header})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == PROBLEM


def test_a_token_with_a_changed_secret_is_401(api: Api) -> None:
    token = api.users.tokens["a_admin"]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    r = api.call(None, "GET", "/v1/machines", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_expired_revoked_and_deactivated_are_401(api: Api, database: TestDatabase) -> None:
    token_id = uuid.UUID(api.users.tokens["a1_viewer"].split("_")[1])
    assert api.call("a1_viewer", "GET", "/v1/machines").status_code == 200
    with database.superuser() as conn:
        conn.execute("UPDATE mes.api_tokens SET expires_at = now() - interval '1 s' "
                     "WHERE id = %s", (token_id,))
    assert api.call("a1_viewer", "GET", "/v1/machines").status_code == 401
    with database.superuser() as conn:
        conn.execute("UPDATE mes.api_tokens SET expires_at = NULL, revoked_at = now() "
                     "WHERE id = %s", (token_id,))
    assert api.call("a1_viewer", "GET", "/v1/machines").status_code == 401
    with database.superuser() as conn:
        conn.execute("UPDATE mes.api_tokens SET revoked_at = NULL WHERE id = %s", (token_id,))
    assert api.call("a1_viewer", "GET", "/v1/machines").status_code == 200
    with database.superuser() as conn:
        conn.execute("UPDATE mes.users SET is_active = false WHERE id = %s",
                     (api.users.ids["a1_viewer"],))
    try:
        assert api.call("a1_viewer", "GET", "/v1/machines").status_code == 401
    finally:
        with database.superuser() as conn:
            conn.execute("UPDATE mes.users SET is_active = true WHERE id = %s",
                         (api.users.ids["a1_viewer"],))


def test_viewer_cannot_resolve_an_ncr(api: Api) -> None:
    ncr = api.ok("a_viewer", "GET", "/v1/ncrs")["items"][0]
    r = api.call("a_viewer", "POST", f"/v1/ncrs/{ncr['id']}/resolve",
                 json={"disposition": "scrap"})
    assert r.status_code == 403
    assert r.headers["content-type"] == PROBLEM
    assert "quality" in r.json()["detail"]
    assert api.ok("a_viewer", "GET", f"/v1/ncrs/{ncr['id']}")["status"] == ncr["status"]


def test_health_metrics_openapi_and_docs(api: Api) -> None:
    import httpx

    health = httpx.get(api.base_url + "/health")
    assert health.status_code == 200 and health.json() == {"healthy": True, "database": "ok"}
    spec = httpx.get(api.base_url + "/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/v1/pm/tasks/{task_id}/complete" in spec["paths"]
    assert httpx.get(api.base_url + "/docs").status_code == 200
    api.ok("a_admin", "GET", "/v1/machines")
    # Recorded once the response is on its way: the client may see it first.
    wait_until(lambda: 'mes_api_requests_total{method="GET",route="/v1/machines",status="200"}'
               in httpx.get(api.base_url + "/metrics").text, timeout=10, what="the metric")


def test_access_log_names_the_route_and_user_never_the_token(api: Api) -> None:
    api.ok("a_admin", "GET", "/v1/machines?limit=1")
    wait_until(lambda: str(api.users.ids["a_admin"]) in api.log_path.read_text(), timeout=10,
               what="the access log line")
    log = api.log_path.read_text()
    assert '"route": "/v1/machines"' in log
    for token in api.users.tokens.values():
        assert token not in log
        assert token.split("_", 2)[2] not in log


def test_access_log_never_holds_a_cookie_or_a_query_string(api: Api) -> None:
    import httpx

    token = api.users.tokens["a_viewer"]
    # The board's way in: the same token in its cookie.
    httpx.get(api.base_url + "/board", cookies={"mes_board": token}, follow_redirects=False)
    api.ok("a_admin", "GET", "/v1/machines",
           params={"kind": "query-marker-7731"}, headers={"Cookie": "other=cookie-marker-5521"})
    wait_until(lambda: str(api.users.ids["a_viewer"]) in api.log_path.read_text()
               and '"route": "/board"' in api.log_path.read_text(), timeout=10,
               what="the board request's access log line")
    log = api.log_path.read_text()
    for secret in (token, token.split("_", 2)[2], "cookie-marker-5521", "query-marker-7731",
                   "mes_board"):
        assert secret not in log
