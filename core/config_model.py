"""The base of every configuration model: unknown keys are errors, values are immutable.

Tag maps, device and tag settings, rules, outbox and broker settings, service settings and the
simulator's layout all derive from `StrictModel`, so a misspelt key in any file is reported
with its path (core.config_errors) instead of being ignored, and a loaded configuration cannot
be changed behind the back of the code that validated it.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A configuration section: `extra="forbid"`, `frozen=True`."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def finite(value: float | None) -> float | None:
    """A field validator body: refuse NaN and infinities (YAML's .nan / .inf parse as floats)."""
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def ordered(model: BaseModel, low: str, high: str) -> None:
    """A model validator body: refuse `high` below `low` (a backoff's first and longest wait,
    which core.backoff.Backoff could not take)."""
    if getattr(model, high) < getattr(model, low):
        raise ValueError(f"{high} is below {low}")
