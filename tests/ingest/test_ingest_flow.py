"""The ingest end to end: messages in, rows out, exactly once, bad input dead-lettered."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.tenancy import Tenant, tenant_transaction
from core.wire import (
    DowntimeCategory,
    DowntimeEnvelope,
    DowntimeRecord,
    Kind,
    MachineState,
    encode,
)
from tests.fixtures.database import TestDatabase
from tests.fixtures.services import require_mosquitto
from tests.fixtures.tenants import Tenants
from tests.ingest.helpers import (
    BASE,
    Publisher,
    count_rows,
    counter_message,
    gateway_topic,
    state_message,
)
from tests.support.wait import wait_until


def test_messages_land_once_and_replays_write_nothing(database: TestDatabase, tenants: Tenants,
                                                       broker_server, start_ingest) -> None:
    service = start_ingest(broker_server)
    gw, machine = "gw-a1", "a1-press"
    msgs = [(gateway_topic(tenants, "a1"), encode(state_message(gw, seq, machine, n=10)))
            for seq in range(1, 201)]
    msgs += [(gateway_topic(tenants, "a1", Kind.COUNTER), encode(counter_message(gw, seq, machine)))
             for seq in range(201, 221)]
    where = "machine_id = %s AND ts >= %s"
    params = (tenants.a.machines["a1"], BASE)
    before = count_rows(database, "machine_status_history", where, params)
    pub = Publisher(broker_server)
    try:
        pub.publish(msgs)
        wait_until(lambda: count_rows(database, "machine_status_history", where, params)
                   == before + 2000, what="2000 state rows")
        wait_until(lambda: count_rows(database, "machine_counter", "machine_id = %s",
                                      (tenants.a.machines["a1"],)) >= 200, what="counters")
        written = service.metrics.sample("ingest_rows_written_total", kind="machine_status")
        pub.publish(msgs)  # the same messages again
        wait_until(lambda: service.metrics.sample("ingest_messages_total", outcome="written")
                   >= 440, what="replayed messages handled")
    finally:
        pub.close()
    assert count_rows(database, "machine_status_history", where, params) == before + 2000
    assert service.metrics.sample("ingest_rows_written_total", kind="machine_status") == written
    assert count_rows(database, "machine_counter", "machine_id = %s",
                      (tenants.a.machines["a1"],)) == 201  # + the seeded one


def _bad_messages(tenants: Tenants) -> list[tuple[str, str, bytes]]:
    """(expected reason, topic, payload) for each kind of bad input."""
    past = BASE - timedelta(days=1, seconds=9000)
    good = state_message("gw-a1", 9000, "a1-press", n=1, start=past)
    raw = encode(good)
    now = datetime.now(UTC)
    far = state_message("gw-a1", 9001, "a1-press", n=1, start=now + timedelta(days=3))
    nan = raw.replace(b'"state":"running"', b'"state":"running","x":1')
    return [
        ("wrong_tenant", "mes/v1/org-b/b1/gw-a1/state", raw),
        ("wrong_tenant", "mes/v1/org-a/a2/gw-a1/state", raw),
        ("malformed", gateway_topic(tenants, "a1"), b'{"v": 1, "gateway": '),
        ("invalid", gateway_topic(tenants, "a1"), raw.replace(b'"seq":9000', b'"seq":"x"')),
        ("invalid", gateway_topic(tenants, "a1"), nan),
        ("malformed", gateway_topic(tenants, "a1", Kind.COUNTER),
         encode(counter_message("gw-a1", 9002, "a1-press", n=1)).replace(
             b'"value":', b'"value":NaN,"v2":')),
        ("payload_too_large", gateway_topic(tenants, "a1"), b" " * (1024 * 1024 + 10)),
        ("unknown_gateway", "mes/v1/org-a/a1/gw-nobody/state",
         raw.replace(b'"gateway":"gw-a1"', b'"gateway":"gw-nobody"')),
        ("gateway_mismatch", gateway_topic(tenants, "a1"),
         raw.replace(b'"gateway":"gw-a1"', b'"gateway":"gw-a2"')),
        ("unknown_machine", gateway_topic(tenants, "a1"),
         encode(state_message("gw-a1", 9003, "no-such-machine", n=1, start=past))),
        ("unknown_machine", gateway_topic(tenants, "a1"),  # another tenant's machine
         encode(state_message("gw-a1", 9004, "b1-press", n=1, start=past))),
        ("timestamp_out_of_range", gateway_topic(tenants, "a1"), encode(far)),
        ("bad_topic", "mes/v1/org-a/a1/gw-a1/nonsense", raw),
        # Hostile strings: refused by validation, each naming its field, never by the database
        # (a NUL used to make PostgreSQL refuse the whole batch around it).
        *[("invalid", gateway_topic(tenants, "a1"),
           raw.replace(b'"state":"running","reason_code":null',
                       b'"state":"fault","reason_code":"' + code + b'"'))
          for code in HOSTILE_REASON_CODES],
    ]


# JSON text of reason codes, one per class of hostile string.
HOSTILE_REASON_CODES = [
    b"F\\u0000",  # NUL
    b"F\\u0007\\u001b[31m",  # BEL, ESC
    b"F1\\r\\nF2",  # CR LF
    b"F1'; DROP TABLE mes.machines; --",  # quote and SQL
    b'say \\"F1\\"',  # double quotes
    b"F\\ud800",  # a lone surrogate
    b"\\u202eF1",  # a bidi override
]


def test_bad_input_goes_to_dead_letters_and_good_input_still_lands(
        database: TestDatabase, tenants: Tenants, broker_server, start_ingest) -> None:
    service = start_ingest(broker_server)
    bad = _bad_messages(tenants)
    m = tenants.a.machines["a1"]
    start = BASE - timedelta(days=2)
    goods = [(gateway_topic(tenants, "a1"),
              encode(state_message("gw-a1", 5000 + i, "a1-press", n=5, start=start)))
             for i in range(len(bad) + 1)]
    interleaved = []
    for i, (_, topic, payload) in enumerate(bad):
        interleaved += [goods[i], (topic, payload)]
    interleaved.append(goods[-1])
    with database.superuser() as conn:
        before = conn.execute("SELECT coalesce(max(id), 0) FROM mes.dead_letters").fetchone()[0]
    pub = Publisher(broker_server)
    try:
        pub.publish(interleaved)
    finally:
        pub.close()
    wait_until(lambda: count_rows(database, "dead_letters", "id > %s", (before,)) == len(bad),
               what="dead letters")
    window = "machine_id = %s AND ts >= %s AND ts < %s"

    wait_until(lambda: count_rows(database, "machine_status_history", window,
                                  (m, start, start + timedelta(days=1))) == 5 * len(goods),
               what="good rows")
    with database.superuser() as conn:
        letters = conn.execute("SELECT reason, topic, payload_size, length(payload) "
                               "FROM mes.dead_letters WHERE id > %s ORDER BY id",
                               (before,)).fetchall()
    assert [r for r, *_ in letters] == [r for r, _, _ in bad]
    with database.superuser() as conn:
        hostile = conn.execute("SELECT detail FROM mes.dead_letters WHERE id > %s AND "
                               "reason = 'invalid' AND detail LIKE '%%reason_code%%'",
                               (before,)).fetchall()
    assert len(hostile) == len(HOSTILE_REASON_CODES)
    assert all("$.records[0].reason_code" in detail for (detail,) in hostile)
    big = next(row for row in letters if row[0] == "payload_too_large")
    assert big[2] == 1024 * 1024 + 10 and big[3] == 64 * 1024  # kept, bounded
    assert service.metrics.sample("ingest_dead_letters_total", reason="wrong_tenant") == 2
    # Nothing of it reached org B.
    assert count_rows(database, "machine_status_history", "organization_id = %s AND ts >= %s",
                      (tenants.b.id, start)) == 0


def test_downtime_start_and_end_become_one_event(database: TestDatabase, tenants: Tenants,
                                                 broker_server, start_ingest) -> None:
    start_ingest(broker_server)
    event = uuid.uuid4()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    common = dict(event_id=event, machine="a1-press", started_at=t0,
                  state=MachineState.FAULT, category=DowntimeCategory.UNPLANNED)
    end = DowntimeRecord(**common, ended_at=t0 + timedelta(seconds=3), reason_code="E12",
                         micro_stop=True)
    begin = DowntimeRecord(**common)
    topic = gateway_topic(tenants, "a1", Kind.DOWNTIME)

    def env(seq: int, rec: DowntimeRecord) -> bytes:
        return encode(DowntimeEnvelope(v=1, gateway="gw-a1", seq=seq, sent_at=t0, records=[rec]))

    pub = Publisher(broker_server)
    try:
        pub.publish([(topic, env(1, end)), (topic, env(2, begin))])  # end before start
    finally:
        pub.close()
    def stored() -> tuple | None:
        with database.app() as conn, tenant_transaction(conn, Tenant(tenants.a.id)):
            return conn.execute("SELECT ended_at, reason_code, micro_stop "
                                "FROM mes.v_downtime_event WHERE event_id = %s",
                                (event,)).fetchone()

    # The end may land first or second (a redelivery after a reconnect changes the order):
    # either way the stored event ends up closed, and stays closed.
    wait_until(lambda: (stored() or (None,))[0] is not None, what="the closed event")
    row = stored()
    assert count_rows(database, "downtime_event", "event_id = %s", (event,)) == 1
    assert row == (t0 + timedelta(seconds=3), "E12", True)


def test_rows_are_visible_only_under_their_tenant(database: TestDatabase, tenants: Tenants,
                                                   broker_server, start_ingest) -> None:
    start_ingest(broker_server)
    start = BASE - timedelta(days=3)
    pub = Publisher(broker_server)
    try:
        pub.publish([(gateway_topic(tenants, "b1"),
                      encode(state_message("gw-b1", 1, "b1-press", n=7, start=start)))])
    finally:
        pub.close()
    wait_until(lambda: count_rows(database, "machine_status_history", "ts >= %s AND "
                                  "organization_id = %s", (start, tenants.b.id)) == 7)
    with database.app() as conn:
        for tenant, expected in ((Tenant(tenants.b.id), 7), (Tenant(tenants.a.id), 0),
                                 (Tenant(tenants.b.id, plant_id=tenants.b.plants["b1"]), 7)):
            with tenant_transaction(conn, tenant):
                n = conn.execute("SELECT count(*) FROM mes.v_machine_status_history "
                                 "WHERE ts >= %s AND machine_id = %s",
                                 (start, tenants.b.machines["b1"])).fetchone()
            assert n == (expected,), tenant


@pytest.mark.parametrize("value", [math.inf])
def test_wire_refuses_non_finite_values(value: float) -> None:
    from core.wire import CounterRecord

    with pytest.raises(ValueError, match="finite"):
        CounterRecord(machine="m", tag="t", ts=datetime.now(UTC), value=value)


def test_a_retained_bad_message_is_dead_lettered_once(database: TestDatabase, tenants: Tenants,
                                                      broker_server, start_ingest) -> None:
    require_mosquitto(broker_server)
    topic = "mes/v1/org-a/a1/gw-a1/telemetry"
    before = count_rows(database, "dead_letters", "topic = %s", (topic,))
    pub = Publisher(broker_server)
    try:
        pub.client.publish(topic, b"not json, and retained", qos=1, retain=True).wait_for_publish()
        first = start_ingest(broker_server, "ingest-retained", MES_MQTT__SHARE_GROUP="")
        wait_until(lambda: count_rows(database, "dead_letters", "topic = %s", (topic,))
                   == before + 1, what="the dead letter")
        # Stop once it is acknowledged (a stop between record and ack would redeliver it).
        wait_until(lambda: first.metrics.sample("ingest_dead_letters_total", reason="malformed")
                   == 1 and first.metrics.sample("ingest_inflight_messages") == 0, what="the ack")
        first.stop()
        second = start_ingest(broker_server, "ingest-retained", MES_MQTT__SHARE_GROUP="")
        marker = (gateway_topic(tenants, "a1"),
                  encode(state_message("gw-a1", 77, "a1-press", n=1,
                                       start=BASE - timedelta(days=13))))
        pub.publish([marker])  # handled after any redelivered retained message
        wait_until(lambda: second.metrics.sample("ingest_messages_total", outcome="written") >= 1)
        assert count_rows(database, "dead_letters", "topic = %s", (topic,)) == before + 1
        second.stop()
    finally:
        pub.client.publish(topic, b"", qos=1, retain=True).wait_for_publish()  # clear it
        pub.close()


WRONG_DEPTH = ["mes/v1/org-a/a1/gw-a1/state/extra", "mes/v1/org-a/a1/gw-a1/state/",
               "mes/v1/org-a/a1/state", "mes/v1/org-a/a1/gw-a1", "mes/v1"]


@pytest.mark.parametrize("share_group", ["", "topics"], ids=["plain", "shared"])
def test_every_topic_under_the_root_is_seen(database: TestDatabase, tenants: Tenants,
                                            broker_server, start_ingest,
                                            share_group: str) -> None:
    group = f"{share_group}{uuid.uuid4().hex[:6]}" if share_group else ""
    service = start_ingest(broker_server, MES_MQTT__SHARE_GROUP=group)
    assert service.settings.mqtt.subscription.endswith("mes/v1/#")
    payload = encode(state_message("gw-a1", 9100, "a1-press", n=1))
    ours = [(topic, payload + group.encode()) for topic in WRONG_DEPTH]
    maintenance = ("mes/v1/org-a/a1/maintenance/task", b'{"task": "not the ingest\'s"}')
    pub = Publisher(broker_server)
    try:
        pub.publish([maintenance, *ours])
    finally:
        pub.close()
    wait_until(lambda: service.metrics.sample("ingest_dead_letters_total", reason="bad_topic")
               == len(WRONG_DEPTH), what="a dead letter per wrong-depth topic")
    with database.superuser() as conn:
        letters = dict(conn.execute(
            "SELECT topic, reason FROM mes.dead_letters WHERE topic = ANY(%s) "
            "AND payload = %s", (WRONG_DEPTH, payload + group.encode())).fetchall())
    assert letters == dict.fromkeys(WRONG_DEPTH, "bad_topic")
    wait_until(lambda: service.metrics.sample("ingest_messages_total", outcome="not_ours") == 1,
               what="the maintenance task left alone")
    assert count_rows(database, "dead_letters", "topic LIKE %s", ("%/maintenance/%",)) == 0


def test_the_same_bad_payload_twice_is_one_letter_seen_twice(
        database: TestDatabase, tenants: Tenants, broker_server, start_ingest) -> None:
    service = start_ingest(broker_server)
    topic = gateway_topic(tenants, "a1", Kind.COUNTER)
    payload = f"not json {uuid.uuid4()}".encode()
    pub = Publisher(broker_server)
    try:
        pub.publish([(topic, payload), (topic, payload)])
    finally:
        pub.close()
    wait_until(lambda: service.metrics.sample("ingest_dead_letters_total", reason="malformed")
               == 2, what="both deliveries refused")
    with database.superuser() as conn:
        rows = conn.execute("SELECT times_seen, last_seen_at >= received_at "
                            "FROM mes.dead_letters WHERE topic = %s AND payload = %s",
                            (topic, payload)).fetchall()
    assert rows == [(2, True)]


def test_a_transaction_of_several_tenants_refused_lands_the_others_and_isolates_the_message(
        database: TestDatabase, tenants: Tenants, broker_server, start_ingest) -> None:
    """One writer, a batch of three tenants in one transaction; the database refuses one
    tenant's rows (its machine moved to another plant after the ingest cached it). The other
    two tenants' rows land, each once; the refused message alone is the dead letter."""
    service = start_ingest(broker_server, MES_INGEST__WRITERS="1",
                           MES_INGEST__BATCH_AGE_MS="1500")
    start = BASE - timedelta(days=17)
    a = tenants.a
    pub = Publisher(broker_server)
    try:
        pub.publish([(gateway_topic(tenants, "a1"),
                      encode(state_message("gw-a1", 1, "a1-press", n=1, start=start)))])
        wait_until(lambda: service.metrics.sample("ingest_messages_total", outcome="written")
                   >= 1, what="the registry cached a1-press")
        with database.superuser() as conn:
            conn.execute("UPDATE mes.machines SET plant_id = %s WHERE id = %s",
                         (a.plants["a2"], a.machines["a1"]))
        msgs = [(gateway_topic(tenants, plant), encode(state_message(
                    f"gw-{plant}", 2, f"{plant}-press", n=5, start=start)))
                for plant in ("b1", "a1", "a2")]
        pub.publish(msgs)
        wait_until(lambda: service.metrics.sample("ingest_messages_total", outcome="written")
                   + service.metrics.sample("ingest_messages_total", outcome="dead_letter")
                   >= 4, what="the three messages handled")
    finally:
        pub.close()
        with database.superuser() as conn:
            conn.execute("UPDATE mes.machines SET plant_id = %s WHERE id = %s",
                         (a.plants["a1"], a.machines["a1"]))
    since = start + timedelta(seconds=10)  # the second messages: seq 2 x 5 records
    for plant, org, expected in (("b1", tenants.b, 5), ("a1", a, 0), ("a2", a, 5)):
        assert count_rows(database, "machine_status_history",
                          "machine_id = %s AND ts >= %s AND ts < %s",
                          (org.machines[plant], since, since + timedelta(minutes=1))
                          ) == expected, plant
    assert count_rows(database, "dead_letters", "reason = 'refused_by_database' AND topic = %s",
                      (gateway_topic(tenants, "a1"),)) == 1
    assert service.metrics.sample("ingest_dead_letters_total",
                                  reason="refused_by_database") == 1
