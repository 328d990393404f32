"""A maintenance engine in a process of its own, for the exactly-once tests: sweeps one plant
at `steps` clock times `step_s` apart from `start`. With `--crash`, it kills itself with
SIGKILL after deciding and inserting, before its transaction commits.

    python -m tests.maintenance.engine_child APP_URL ORG_ID PLANT_ID START STEPS STEP_S [--crash]
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from datetime import datetime, timedelta

from psycopg_pool import ConnectionPool

from core.tenancy import Tenant
from ingest.maintenance import engine as engine_module
from ingest.maintenance.engine import MaintenanceEngine


def main(argv: list[str]) -> int:
    url, org, plant, start, steps, step_s = argv[:6]
    if "--crash" in argv:
        decide_and_insert = engine_module.raise_due

        def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
            raised = decide_and_insert(*args, **kwargs)
            if raised:
                os.kill(os.getpid(), signal.SIGKILL)
            return raised

        engine_module.raise_due = crash  # type: ignore[assignment]
    now = datetime.fromisoformat(start)
    pool = ConnectionPool(url, min_size=1, max_size=1, kwargs={"autocommit": True})
    engine = MaintenanceEngine(pool, lambda: now)
    tenant = Tenant(uuid.UUID(org), uuid.UUID(plant))
    raised = 0
    for i in range(int(steps)):
        now = datetime.fromisoformat(start) + timedelta(seconds=i * float(step_s))
        raised += len(engine.sweep(tenant))
    pool.close()
    print(raised)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
