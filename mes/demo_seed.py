"""The demo organization: ACME with a North plant (its machines are the simulator's, read by
gateway gw-north) and a South plant (a gateway and machines that stay quiet), seeded through
the application role under the tenant context, like any provisioning would be."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, make_sessions
from core.errors import UserFacingError
from core.models import Gateway, Machine, Organization, Plant, User
from core.tenancy import Tenant, unit_of_work
from mes.sim.layout import machine_code

DEMO_ORG = "acme"
LIVE_PLANT = "north"  # the plant whose gateway reads the simulator
DEMO_PLANTS = {"north": "North plant", "south": "South plant"}


@dataclass
class DemoTenant:
    """Identities of the seeded demo organization, for the pipeline parts that need them."""

    organization_id: uuid.UUID
    plants: dict[str, uuid.UUID] = field(default_factory=dict)
    gateways: dict[str, str] = field(default_factory=dict)  # plant code -> gateway code
    machines: dict[str, list[str]] = field(default_factory=dict)  # plant code -> machine codes


def seed_demo(app_url: str, live_machines: int = 4) -> DemoTenant:
    """Create the demo organization; the live plant gets the simulator's first machines."""
    engine = make_engine(app_url, pool_size=1, max_overflow=0)
    demo = DemoTenant(organization_id=uuid.uuid4())
    codes = {"north": [machine_code(i) for i in range(live_machines)],
             "south": ["s001", "s002"]}
    try:
        _seed(make_sessions(engine), demo, codes)
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


def _seed(sessions: sessionmaker[Session], demo: DemoTenant,
          codes: dict[str, list[str]]) -> None:
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
            demo.gateways[code] = f"gw-{code}"
            s.add(Gateway(organization_id=org_id, plant_id=plant.id, code=f"gw-{code}",
                          name=f"{name} gateway"))
            demo.machines[code] = codes[code]
            for i, mcode in enumerate(codes[code], start=1):
                s.add(Machine(organization_id=org_id, plant_id=plant.id, code=mcode,
                              name=f"{name} machine {i}", kind="press"))


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
