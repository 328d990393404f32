"""Dead letters through the API: administrators only, each confined to the letters its
organization (and plant scope) can be told from by the topic; a replay runs a letter through
the ingest's checks and writer again and the message lands."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from core.wire import StateEnvelope, StateRecord, encode
from tests.api.conftest import Api
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants

NEW_MACHINE = "a1-late"


def _state_message(org: str, plant: str, gateway: str, machine: str) -> tuple[str, bytes]:
    now = datetime.now(UTC)
    envelope = StateEnvelope(v=1, gateway=gateway, seq=1, sent_at=now,
                             records=[StateRecord(machine=machine, ts=now, state="running")])
    return f"mes/v1/{org}/{plant}/{gateway}/state", encode(envelope)


@pytest.fixture(scope="module")
def letters(database: TestDatabase, tenants: Tenants) -> dict[str, int]:
    """One dead letter per case, by name: whose it is comes from its topic alone."""
    cases = {
        # A machine not registered yet: replayable once it is.
        "a1": (*_state_message("org-a", "a1", "gw-a1", NEW_MACHINE), "gw-a1",
               "unknown_machine"),
        "a2": (*_state_message("org-a", "a2", "gw-a2", "a2-nothing"), "gw-a2",
               "unknown_machine"),
        # A topic naming organization A's code but no plant of it: organization-wide.
        "a_no_plant": (*_state_message("org-a", "zz", "gw-zz", "m"), "gw-zz",
                       "unknown_gateway"),
        "b1": (*_state_message("org-b", "b1", "gw-b1", "b1-nothing"), "gw-b1",
               "unknown_machine"),
        # B's gateway claiming A's topic: not A's to read.
        "wrong_tenant": (*_state_message("org-a", "a1", "gw-b1", "x"), "gw-b1",
                         "wrong_tenant"),
        "bad_topic": ("garbage/topic", b"{}", None, "bad_topic"),
        "unknown_org": (*_state_message("org-zz", "p", "gw-q", "m"), "gw-q",
                        "unknown_gateway"),
    }
    ids = {}
    with database.superuser() as conn:
        for name, (topic, payload, gateway, reason) in cases.items():
            ids[name] = conn.execute(
                "INSERT INTO mes.dead_letters (topic, gateway_code, reason, detail, payload, "
                "payload_size, payload_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id", (topic, gateway, reason, f"seeded {name}", payload,
                                 len(payload), hashlib.sha256(payload).digest())).fetchone()[0]
    return ids


def _listed(api: Api, user: str, **params: str) -> list[int]:
    return [d["id"] for d in api.ok(user, "GET", "/v1/dead-letters", params=params)["items"]]


@pytest.mark.parametrize("user", ["a_viewer", "a1_tech", "a1_operator", "a1_quality"])
def test_only_administrators_list_or_replay(api: Api, letters: dict[str, int], user: str) -> None:
    assert api.call(user, "GET", "/v1/dead-letters").status_code == 403
    r = api.call(user, "POST", "/v1/dead-letters/replay", json={"ids": [letters["a1"]]})
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"


def test_each_administrator_sees_what_its_scope_can_be_told_from(
        api: Api, letters: dict[str, int]) -> None:
    org_a = {letters[n] for n in ("a1", "a2", "a_no_plant")}
    assert set(_listed(api, "a_admin", state="all")) == org_a
    # A plant administrator: its plant's letters and the organization-wide ones.
    assert set(_listed(api, "a1_lead", state="all")) == {letters["a1"], letters["a_no_plant"]}
    assert set(_listed(api, "b_admin", state="all")) == {letters["b1"]}
    # Nobody's: the wrong tenant's, the bad topic's, the unknown organization's.
    nobody = {letters[n] for n in ("wrong_tenant", "bad_topic", "unknown_org")}
    for user in ("a_admin", "a_all", "a1_lead", "b_admin"):
        assert not nobody & set(_listed(api, user, state="all"))


def test_filters_and_cursor_pages(api: Api, letters: dict[str, int]) -> None:
    assert set(_listed(api, "a_admin", reason="unknown_gateway")) == {letters["a_no_plant"]}
    seen, cursor = [], None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = api.ok("a_admin", "GET", "/v1/dead-letters", params=params)
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True)  # newest first
    assert set(seen) >= {letters["a1"], letters["a2"], letters["a_no_plant"]}
    r = api.call("a_admin", "GET", "/v1/dead-letters", params={"cursor": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"
    r = api.call("a_admin", "GET", "/v1/dead-letters", params={"reason": "nonsense"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"


def test_another_organizations_letters_cannot_be_replayed(
        api: Api, letters: dict[str, int], database: TestDatabase) -> None:
    foreign = [letters[n] for n in ("b1", "wrong_tenant", "bad_topic")]
    body = api.ok("a_admin", "POST", "/v1/dead-letters/replay", json={"ids": foreign})
    assert body["replayed"] == 0
    assert [o["id"] for o in body["outcomes"]] == foreign
    assert all(o["detail"] == "no waiting dead letter of yours" for o in body["outcomes"])
    with database.superuser() as conn:
        assert conn.execute("SELECT count(*) FROM mes.dead_letters WHERE id = ANY(%s) "
                            "AND replayed_at IS NULL", (foreign,)).fetchone()[0] == 3


def test_a_replay_redelivers_the_message_once_its_cause_is_fixed(
        api: Api, letters: dict[str, int], database: TestDatabase, tenants: Tenants) -> None:
    letter = letters["a1"]
    body = api.ok("a1_lead", "POST", "/v1/dead-letters/replay", json={"ids": [letter]})
    assert body["replayed"] == 0
    assert body["outcomes"][0]["detail"].startswith("unknown_machine")
    assert letter in _listed(api, "a1_lead", state="waiting")

    with database.superuser() as conn:
        machine = conn.execute(
            "INSERT INTO mes.machines (organization_id, plant_id, code, name) "
            "VALUES (%s, %s, %s, 'Late press') RETURNING id",
            (tenants.a.id, tenants.a1, NEW_MACHINE)).fetchone()[0]
    body = api.ok("a1_lead", "POST", "/v1/dead-letters/replay", json={"ids": [letter]})
    assert body["replayed"] == 1, body
    assert body["outcomes"] == [{"id": letter, "replayed": True,
                                 "detail": "1 new row(s) of 1"}]
    with database.superuser() as conn:
        assert conn.execute("SELECT state FROM mes.machine_status_history "
                            "WHERE machine_id = %s", (machine,)).fetchall() == [("running",)]
    assert letter in _listed(api, "a1_lead", state="replayed")
    assert letter not in _listed(api, "a1_lead", state="waiting")
    again = api.ok("a1_lead", "POST", "/v1/dead-letters/replay", json={"ids": [letter]})
    assert again["outcomes"][0] == {"id": letter, "replayed": False,
                                    "detail": "no waiting dead letter of yours"}
