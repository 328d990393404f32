"""Every wire kind has one staging kind, and its row builder puts every field of the wire
record into the staging column of that name. Driven by the wire types: a new kind or field
fails here until core.staging covers it. (The staging columns against the database:
tests/test_tenant_writes.py and tests/test_schema.py.)"""

from __future__ import annotations

import uuid
from typing import get_args

import msgspec
import pytest

from core.staging import MACHINE_FIELD, STAGING, STAGING_OF, TENANT_COLUMNS, TIME_SERIES_TABLES
from core.wire import ENVELOPES, KIND_OF, RECORD_KINDS, RECORD_TYPES, Kind, Record
from tests.fixtures.tenants import T0
from tests.wire_samples import sample_record


def test_record_types_come_from_the_envelopes() -> None:
    assert set(RECORD_KINDS) == set(ENVELOPES) == set(Kind) - {Kind.STATUS}
    assert set(RECORD_TYPES.values()) == set(get_args(Record))
    for kind, record_type in RECORD_TYPES.items():
        assert KIND_OF[record_type] is kind
        envelope = ENVELOPES[kind](v=1, gateway="gw-1", seq=1, sent_at=T0,
                                   records=[sample_record(record_type, T0)])
        assert type(envelope.records[0]) is record_type  # type: ignore[attr-defined]


def test_every_record_kind_has_one_staging_kind() -> None:
    assert set(STAGING_OF) == set(RECORD_KINDS)
    assert len(STAGING) == len(STAGING_OF) == len(TIME_SERIES_TABLES)
    for kind, spec in STAGING_OF.items():
        assert STAGING[spec.name] is spec
        assert spec.record_type is RECORD_TYPES[kind]
        assert len(spec.columns) == len(spec.types) == len(set(spec.columns))


@pytest.mark.parametrize("kind", RECORD_KINDS, ids=str)
def test_row_builder_puts_every_field_in_its_column(kind: Kind) -> None:
    spec = STAGING_OF[kind]
    record = sample_record(spec.record_type, T0)
    org, plant, machine = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    row = spec.row(record, org, plant, machine)

    assert len(row) == len(spec.columns)
    by_column = dict(zip(spec.columns, row, strict=True))
    tenant = dict(zip((c for c, _ in TENANT_COLUMNS), (org, plant, machine), strict=True))
    wire = {f.name: getattr(record, f.name) for f in msgspec.structs.fields(record)
            if f.name != MACHINE_FIELD}
    # Every column filled from the tenant ids or the record, every record field in a column.
    assert set(by_column) == set(tenant) | set(wire)
    for column, value in (tenant | wire).items():
        assert by_column[column] == value, f"{kind}: column {column}"
        assert value is not None, f"{kind}: the sample leaves {column} empty"
