"""A record of any wire record type with a distinct, valid value in every field, made from the
type's own field list (msgspec.inspect), so that tests over every kind need no hand list."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
import msgspec.inspect as mi


def sample_record(record_type: type[Any], t0: datetime) -> Any:
    """Every field set (optional ones too), no two fields alike: a value that lands in the wrong
    column cannot go unnoticed. Timestamps rise with the field's position (ended_at after
    started_at); strings are unique per call, so a replay elsewhere cannot collide."""
    tag = uuid.uuid4().hex[:8]
    fields = mi.type_info(record_type).fields  # type: ignore[attr-defined]
    values = {f.name: _value(f.type, f.name, i, t0, tag) for i, f in enumerate(fields)}
    return msgspec.convert(values, record_type)


def _value(t: mi.Type, name: str, i: int, t0: datetime, tag: str) -> Any:
    if isinstance(t, mi.UnionType):  # X | None: give the X
        t = next(m for m in t.types if not isinstance(m, mi.NoneType))
    if isinstance(t, mi.StrType):
        return f"{name}-{tag}"
    if isinstance(t, mi.DateTimeType):
        return t0 + timedelta(minutes=i)
    if isinstance(t, mi.UUIDType):
        return uuid.uuid4()
    if isinstance(t, mi.FloatType):
        return 1000.25 + i
    if isinstance(t, mi.BoolType):
        return True
    if isinstance(t, mi.EnumType):
        # The second member: for MachineState a stop state, which a downtime record requires.
        return list(t.cls)[1]
    raise TypeError(f"no sample for field {name!r} of type {t}")
