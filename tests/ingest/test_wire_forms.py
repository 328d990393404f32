"""Both wire forms through the ingest: the records form (v 1) and the columns form (v 2) of the
same counter and telemetry records land as the same rows, once; a broken columns message is a
dead letter naming the bad item."""

from __future__ import annotations

from datetime import timedelta

from core.wire import RECORD_TYPES, Kind, WireForm, encode_piece, payload
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.ingest.helpers import BASE, Publisher, count_rows, gateway_topic
from tests.support.wait import wait_until

TABLES = {Kind.COUNTER: "machine_counter", Kind.TELEMETRY: "machine_telemetry"}


def _records(kind: Kind, tag: str) -> list:
    """Two reads of three tags each, times to the microsecond, values of every shape."""
    start = BASE + timedelta(minutes=17, microseconds=654_321)
    values = [12.0, 72.41383361816406, -0.5, 2.0**40, 1e-7, 0.0]
    return [RECORD_TYPES[kind]("a1-press", f"{tag}-{i % 3}",
                               start + timedelta(seconds=i // 3, microseconds=i // 3), v)
            for i, v in enumerate(values)]  # fmt: skip


def _message(kind: Kind, form: WireForm, seq: int, records: list) -> bytes:
    return payload(kind, form, "gw-a1", seq, BASE, [encode_piece(kind, form, records)])


def _rows(database: TestDatabase, kind: Kind, tag: str) -> list[tuple]:
    with database.superuser() as conn:
        return conn.execute(
            f"SELECT m.code, t.tag, t.ts, t.value FROM mes.{TABLES[kind]} t "
            "JOIN mes.machines m ON m.id = t.machine_id WHERE t.tag LIKE %s ORDER BY t.ts, t.tag",
            (f"{tag}-%",),
        ).fetchall()


def test_the_same_records_in_both_forms_land_identically_once(
    database: TestDatabase, tenants: Tenants, broker_server, start_ingest
) -> None:
    service = start_ingest(broker_server)
    written = service.metrics.sample("ingest_messages_total", outcome="written") or 0
    batches = {kind: _records(kind, f"wire-forms-{kind.value}") for kind in TABLES}
    messages = []
    seq = 7000
    for form in (WireForm.COLUMNS, WireForm.RECORDS, WireForm.COLUMNS):  # and a replay
        for kind, records in batches.items():
            seq += 1
            messages.append((gateway_topic(tenants, "a1", kind),
                             _message(kind, form, seq, records)))  # fmt: skip
    pub = Publisher(broker_server)
    try:
        pub.publish(messages)
    finally:
        pub.close()
    wait_until(lambda: service.metrics.sample("ingest_messages_total", outcome="written")
               >= written + len(messages), what="every message written")  # fmt: skip
    for kind, records in batches.items():
        expected = sorted(((r.machine, r.tag, r.ts, r.value) for r in records),
                          key=lambda row: (row[2], row[1]))  # fmt: skip
        assert _rows(database, kind, f"wire-forms-{kind.value}") == expected


def test_a_broken_columns_message_is_a_dead_letter_naming_the_item(
    database: TestDatabase, tenants: Tenants, broker_server, start_ingest
) -> None:
    start_ingest(broker_server)
    records = _records(Kind.COUNTER, "wire-forms-bad")
    good = _message(Kind.COUNTER, WireForm.COLUMNS, 7100, records)
    broken = {
        "$.blocks[0].k[4]": good.replace(b'"k":[0,1,2,0,1,2]', b'"k":[0,1,2,0,9,2]'),
        "$.blocks[0].dt": good.replace(b'"dt":[0,0,0,1000001,0,0]', b'"dt":[0,0,0,1000001]'),
        "$.blocks[0].x[1]": good.replace(b"72.41383361816406", b'"72.4"'),
        "$.blocks[0].tags[2]": good.replace(b'"wire-forms-bad-2"', b'"wire-forms-bad-2\\u0000"'),
    }
    for where, payload_ in broken.items():
        assert payload_ != good, where
    with database.superuser() as conn:
        before = conn.execute("SELECT coalesce(max(id), 0) FROM mes.dead_letters").fetchone()[0]
    topic = gateway_topic(tenants, "a1", Kind.COUNTER)
    pub = Publisher(broker_server)
    try:
        pub.publish([(topic, p) for p in broken.values()] + [(topic, good)])
    finally:
        pub.close()
    wait_until(lambda: count_rows(database, "dead_letters", "id > %s", (before,)) == len(broken),
               what="dead letters")
    wait_until(lambda: len(_rows(database, Kind.COUNTER, "wire-forms-bad")) == len(records),
               what="the good message's rows")
    with database.superuser() as conn:
        letters = conn.execute("SELECT reason, detail FROM mes.dead_letters WHERE id > %s "
                               "ORDER BY id", (before,)).fetchall()  # fmt: skip
    assert [reason for reason, _ in letters] == ["invalid"] * len(broken)
    for where, (_, detail) in zip(broken, letters, strict=True):
        assert f"`{where}`" in detail, detail
