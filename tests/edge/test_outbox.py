"""The durable outbox on its own: durability (reopen, SIGKILL), assembly, seq, bound, state."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.wire import (
    KIND_OF,
    ColumnsEnvelope,
    Kind,
    StateEnvelope,
    WireForm,
    decode,
    encode,
    form_of,
    to_columns,
)
from edge_agent.delivery.outbox import Outbox, OutboxInUse
from edge_agent.delivery.settings import OutboxConfig
from mes.services.broker import PROJECT_ROOT
from tests.edge.mqtt_helpers import GATEWAY, counter, state, telemetry
from tests.support.wait import wait_until

BIG = 100_000


@pytest.fixture
def config(tmp_path: Path) -> OutboxConfig:
    return OutboxConfig(path=tmp_path / "outbox.sqlite")


@pytest.fixture
def outbox(config: OutboxConfig) -> Iterator[Outbox]:
    with Outbox.open(config, GATEWAY) as ob:
        yield ob


def assemble_all(ob: Outbox, max_records: int = 500) -> list:
    ob.mark_due()
    return ob.assemble(BIG, max_records=max_records, max_bytes=BIG * 10)


def test_messages_carry_the_records_per_kind_with_consecutive_seq(outbox: Outbox) -> None:
    states = [state("m-1", i) for i in range(7)]
    counters = [counter("m-1", i) for i in range(5)]
    outbox.add_many(states + counters)
    messages = assemble_all(outbox, max_records=3)
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    by_kind: dict[Kind, list] = {}
    for m in messages:
        env = decode(m.kind, m.payload)
        assert env.seq == m.seq and env.gateway == GATEWAY
        assert len(env.records) <= 3
        by_kind.setdefault(m.kind, []).extend(env.records)
    assert by_kind == {Kind.STATE: states, Kind.COUNTER: counters}


@pytest.mark.parametrize("form", list(WireForm))
def test_a_payload_is_byte_for_byte_what_encoding_its_envelope_makes(
    config: OutboxConfig, form: WireForm
) -> None:
    # The outbox splices stored pieces into the envelope: the bytes must be the same.
    with Outbox.open(config, GATEWAY, form=form) as outbox:
        outbox.add_many([telemetry("m-1", i) for i in range(4)] + [state("m-2", 1)])
        outbox.flush()
        outbox.add_many([telemetry("m-2", i) for i in range(3)])  # a second piece
        messages = assemble_all(outbox)
    assert {m.kind for m in messages} == {Kind.TELEMETRY, Kind.STATE}
    pieces = [[telemetry("m-1", i) for i in range(4)], [telemetry("m-2", i) for i in range(3)]]
    for m in messages:
        envelope = decode(m.kind, m.payload)
        if form_of(m.kind, form) is WireForm.COLUMNS:
            assert envelope.records == pieces[0] + pieces[1]
            columns = ColumnsEnvelope(v=2, gateway=GATEWAY, seq=m.seq, sent_at=envelope.sent_at,
                                      blocks=[to_columns(p) for p in pieces])
            assert encode(columns) == m.payload
        else:
            assert encode(envelope) == m.payload


def test_records_added_after_the_tick_wait_for_the_next(outbox: Outbox) -> None:
    outbox.add(state("m-1", 0))
    outbox.mark_due()
    outbox.add(state("m-1", 1))
    [first] = outbox.assemble(10, max_records=100, max_bytes=BIG)
    assert decode(Kind.STATE, first.payload).records == [state("m-1", 0)]
    outbox.mark_due()
    [second] = outbox.assemble(10, max_records=100, max_bytes=BIG)
    assert decode(Kind.STATE, second.payload).records == [state("m-1", 1)]


def test_message_size_is_capped_by_bytes(outbox: Outbox) -> None:
    outbox.add_many(telemetry("m-1", i) for i in range(300))
    outbox.mark_due()
    messages = outbox.assemble(BIG, max_records=500, max_bytes=4096)
    assert len(messages) > 1
    assert all(len(m.payload) <= 4096 for m in messages)
    assert sum(m.n_records for m in messages) == 300


def test_backlog_of_one_kind_does_not_hold_back_the_others(outbox: Outbox) -> None:
    outbox.add_many(telemetry("m-1", i) for i in range(2000))
    outbox.add(state("m-1", 0))
    outbox.mark_due()
    first_two = outbox.assemble(2, max_records=100, max_bytes=BIG)
    assert {m.kind for m in first_two} == {Kind.STATE, Kind.TELEMETRY}


def test_seq_state_and_unacknowledged_messages_survive_a_restart(config: OutboxConfig) -> None:
    with Outbox.open(config, GATEWAY) as ob:
        ob.add_many(state("m-1", i) for i in range(4))
        one, two = assemble_all(ob, max_records=2)
        ob.ack(one.seq)
        ob.put_state("totals", {"m-1": 41})
    with Outbox.open(config, GATEWAY) as ob:
        assert [(m.seq, m.payload) for m in ob.stored(limit=10)] == [(two.seq, two.payload)]
        assert ob.get_state("totals") == {"m-1": 41}
        assert ob.get_state("missing", 0) == 0
        ob.add(state("m-1", 9))
        [three] = assemble_all(ob)
        assert three.seq == two.seq + 1


def test_acknowledged_message_is_no_longer_offered(outbox: Outbox) -> None:
    outbox.add_many(state("m-1", i) for i in range(3))
    [msg] = assemble_all(outbox)
    assert outbox.stored(limit=5) == [msg]
    assert outbox.stored(exclude={msg.seq}, limit=5) == []
    outbox.ack(msg.seq)
    assert outbox.stored(limit=5) == []
    outbox.flush()
    assert outbox.depth().messages == 0 and outbox.depth().bytes == 0


def test_a_second_process_cannot_open_the_same_outbox(outbox: Outbox, config: OutboxConfig) -> None:
    with pytest.raises(OutboxInUse):
        Outbox.open(config, GATEWAY)


def _child(path: Path, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.edge.publisher_child", str(path), *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "added"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_flushed_records_survive_sigkill(config: OutboxConfig) -> None:
    _kill(_child(config.path, "0", "1000", "--flush"))
    with Outbox.open(config, GATEWAY) as ob:
        assert ob.depth().records == 1000
        assert ob.get_state("last_added") == 999


def test_group_commit_makes_records_durable_without_flush(config: OutboxConfig) -> None:
    proc = _child(config.path, "0", "1000")
    try:
        with sqlite3.connect(config.path) as db:
            wait_until(
                lambda: db.execute("SELECT coalesce(sum(n), 0) FROM piece").fetchone()[0] == 1000,
                10,
                "the group commit",
            )
        db.close()
    finally:
        _kill(proc)
    with Outbox.open(config, GATEWAY) as ob:
        ob.add(counter("m-0", 1000))
        messages = assemble_all(ob)
    values = [r.value for m in messages for r in decode(m.kind, m.payload).records]
    assert values == list(range(1001))


def test_bound_drops_telemetry_first_and_counts_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = OutboxConfig(path=tmp_path / "o.sqlite", max_bytes=64 * 1024)
    with Outbox.open(config, GATEWAY) as ob:
        states = [state("m-1", i) for i in range(200)]  # about 17 KB
        ob.add_many(states)
        ob.add_many(telemetry("m-1", i) for i in range(2000))  # about 150 KB
        ob.flush()
        depth = ob.depth()
        assert depth.bytes <= config.max_bytes
        assert ob.dropped[Kind.TELEMETRY] > 0
        assert ob.dropped.get(Kind.STATE, 0) == 0
        assert depth.records == 200 + 2000 - ob.dropped[Kind.TELEMETRY]
        messages = assemble_all(ob)
        kept = [
            r
            for m in messages
            if m.kind is Kind.STATE
            for r in decode(Kind.STATE, m.payload).records
        ]
        assert kept == states
        telemetry_kept = [
            r
            for m in messages
            if m.kind is Kind.TELEMETRY
            for r in decode(Kind.TELEMETRY, m.payload).records
        ]
        assert telemetry_kept[-1] == telemetry("m-1", 1999)  # the oldest went first
    assert "outbox bound reached" in caplog.text


def test_bound_drops_state_only_when_nothing_else_is_left(tmp_path: Path) -> None:
    config = OutboxConfig(path=tmp_path / "o.sqlite", max_bytes=64 * 1024)
    with Outbox.open(config, GATEWAY) as ob:
        ob.add_many(counter("m-1", i) for i in range(100))
        ob.add_many(state("m-1", i) for i in range(2000))
        ob.flush()
        assert ob.dropped[Kind.COUNTER] == 100
        assert ob.dropped[Kind.STATE] > 0
        assert ob.depth().bytes <= config.max_bytes


def test_records_older_than_max_age_are_dropped(tmp_path: Path) -> None:
    now = [1_000_000.0]
    config = OutboxConfig(path=tmp_path / "o.sqlite", max_age_s=60)
    with Outbox(config, GATEWAY, clock=lambda: now[0]) as ob:
        ob.add_many(telemetry("m-1", i) for i in range(10))
        ob.add(state("m-1", 0))
        ob.flush()
        now[0] += 30
        ob.add(state("m-1", 1))
        ob.flush()
        assert ob.depth().oldest_age_s == pytest.approx(30)
        now[0] += 40
        ob.flush()
        assert ob.dropped == {Kind.TELEMETRY: 10, Kind.STATE: 1}
        [msg] = assemble_all(ob)
        assert isinstance(decode(Kind.STATE, msg.payload), StateEnvelope)
        assert decode(Kind.STATE, msg.payload).records == [state("m-1", 1)]


def test_state_handed_with_records_is_committed_with_them(config: OutboxConfig) -> None:
    with Outbox.open(config, GATEWAY) as ob:
        ob.add_many([counter("m-1", 7)], state={"m-1": {"cycles": 7}})
        assert ob.get_state("m-1") == {"cycles": 7}  # readable before the commit, too
    with Outbox.open(config, GATEWAY) as ob:
        assert ob.get_state("m-1") == {"cycles": 7}
        assert ob.depth().records == 1


def test_records_stored_one_row_each_by_an_older_agent_are_published(
    config: OutboxConfig,
) -> None:
    # The outbox before pieces kept a table `record`, one row per record: an upgraded agent
    # publishes what an old one left, in order, nothing lost.
    states = [state("m-1", i) for i in range(3)]
    counters = [counter("m-1", i) for i in range(1200)]
    db = sqlite3.connect(config.path)
    db.execute("CREATE TABLE record (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
               " added_at REAL NOT NULL, body BLOB NOT NULL)")  # fmt: skip
    db.executemany("INSERT INTO record (kind, added_at, body) VALUES (?, ?, ?)",
                   [(KIND_OF[type(r)].value, time.time(), encode(r)) for r in [*states, *counters]])
    db.commit()
    db.close()
    with Outbox.open(config, GATEWAY) as ob:
        assert ob.depth().records == 1203
        messages = assemble_all(ob, max_records=400)
    got: dict[Kind, list] = {}
    for m in messages:
        got.setdefault(m.kind, []).extend(decode(m.kind, m.payload).records)
    assert got == {Kind.STATE: states, Kind.COUNTER: counters}


def test_a_piece_larger_than_a_message_is_split_in_order(config: OutboxConfig) -> None:
    with Outbox.open(config, GATEWAY, piece_records=1000) as ob:
        counters = [counter("m-1", i) for i in range(1000)]
        ob.add_many(counters)
        messages = assemble_all(ob, max_records=300)
        assert [m.n_records for m in messages] == [300, 300, 300, 100]
        assert ob.depth().records == 0 and ob.depth().messages == 4
    assert [r for m in messages for r in decode(m.kind, m.payload).records] == counters
