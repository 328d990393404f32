"""Registry files for the tests, and the `mes` command run as a user runs it."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, make_sessions
from tests.fixtures.database import TestDatabase

# Two organizations; entries in key order, so that an export is the file itself.
REGISTRY: dict[str, Any] = {"organizations": [
    {"code": "org-a", "name": "Org A",
     "plants": [{"code": "a1", "name": "Plant A1", "timezone": "Europe/Berlin"},
                {"code": "a2", "name": "Plant A2", "timezone": "America/Chicago"}],
     "users": [{"email": "admin@a.test", "name": "Ada", "roles": ["org_admin"]},
               {"email": "lead@a.test", "name": "Lee", "roles": ["plant_admin"], "plant": "a1"},
               {"email": "tech@a.test", "name": "Tom", "roles": ["maintenance", "operator"],
                "plant": "a2"}],
     "gateways": [{"code": "gw-a1", "name": "Gateway A1", "plant": "a1"},
                  {"code": "gw-a2", "name": "Gateway A2", "plant": "a2"}],
     "machines": [{"code": "a1-m1", "name": "Press 1", "kind": "press", "plant": "a1",
                   "tags": {"line": "l1"}},
                  {"code": "a1-m2", "name": "Press 2", "plant": "a1"},
                  {"code": "a2-m1", "name": "Lathe", "kind": "lathe", "plant": "a2"}]},
    {"code": "org-b", "name": "Org B",
     "plants": [{"code": "b1", "name": "Plant B1"}],
     "users": [{"email": "admin@b.test", "name": "Bea", "roles": ["org_admin"]}],
     "gateways": [{"code": "gw-b1", "name": "Gateway B1", "plant": "b1"}],
     "machines": [{"code": "b1-m1", "name": "Press", "plant": "b1"}]},
]}


def registry_data() -> dict[str, Any]:
    return copy.deepcopy(REGISTRY)


def write(folder: Path, data: dict[str, Any], name: str = "registry.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_mes(db: TestDatabase, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`mes ARGS` with the database's superuser as database.url (the app role derived)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MES_")}
    return subprocess.run(
        [sys.executable, "-m", "mes.cli", *args], capture_output=True, text=True, timeout=120,
        check=False, env={**clean, "MES_DATABASE__URL": db.superuser_url, **env})


@contextmanager
def app_sessions(db: TestDatabase) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db.app_url, pool_size=1, max_overflow=0)
    try:
        yield make_sessions(engine)
    finally:
        engine.dispose()
