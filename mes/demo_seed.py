"""The demo organization: ACME with a North plant (its machines are the simulator's, read by
gateway gw-north) and a South plant (a gateway and machines that stay quiet), from the registry
file config/registry/demo.yaml, applied through the application role by the same code as
`mes registry apply`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select

from core.db import make_engine, make_sessions
from core.errors import UserFacingError
from core.models import Gateway, Machine, Organization, Plant, User
from core.registry.apply import apply_registry, lookup_organization
from core.registry.model import MachineEntry, Registry, load_registry
from core.tenancy import Tenant, unit_of_work
from core.tokens import TokenSettings, create_token
from mes.services.broker import PROJECT_ROOT
from mes.sim.layout import machine_code

DEMO_REGISTRY = PROJECT_ROOT / "config" / "registry" / "demo.yaml"
DEMO_ORG = "acme"
DEMO_TECHNICIAN = "tech.north@acme.example"  # a maintenance user of the live plant
LIVE_PLANT = "north"  # the plant whose gateway reads the simulator


@dataclass
class DemoTenant:
    """Identities of the seeded demo organization, for the pipeline parts that need them."""

    organization_id: uuid.UUID
    plants: dict[str, uuid.UUID] = field(default_factory=dict)
    gateways: dict[str, str] = field(default_factory=dict)  # plant code -> gateway code
    machines: dict[str, list[str]] = field(default_factory=dict)  # plant code -> machine codes


def demo_registry(live_machines: int = 4) -> Registry:
    """The demo registry file, the live plant's machines being the simulator's first ones."""
    registry = load_registry(DEMO_REGISTRY)
    [org] = registry.organizations
    listed = {m.code: m for m in org.machines if m.plant == LIVE_PLANT}
    live = [listed.get(code) or MachineEntry(code=code, name=f"Simulated machine {i + 1}",
                                             kind="press", plant=LIVE_PLANT)
            for i, code in enumerate(machine_code(i) for i in range(live_machines))]
    machines = live + [m for m in org.machines if m.plant != LIVE_PLANT]
    return Registry(organizations=[org.model_copy(update={"machines": machines})])


def seed_demo(app_url: str, live_machines: int = 4) -> DemoTenant:
    """Apply the demo registry to a database that does not hold the demo organization yet."""
    engine = make_engine(app_url, pool_size=1, max_overflow=0)
    sessions = make_sessions(engine)
    registry = demo_registry(live_machines)
    try:
        if lookup_organization(sessions, DEMO_ORG) is not None:
            raise UserFacingError(
                f"this database already holds an organization {DEMO_ORG!r}: run the demo on a "
                "fresh database (unset database.url to use a private one)"
            )
        [plan] = apply_registry(sessions, registry)
        org_id = plan.organization_id
        with unit_of_work(sessions, Tenant(org_id)) as s:
            plant_ids = {code: pid for code, pid in s.execute(select(Plant.code, Plant.id))}
    finally:
        engine.dispose()
    [org] = registry.organizations
    demo = DemoTenant(organization_id=org_id)
    for plant in org.plants:
        demo.plants[plant.code] = plant_ids[plant.code]
        demo.gateways[plant.code] = next(g.code for g in org.gateways if g.plant == plant.code)
        demo.machines[plant.code] = [m.code for m in org.machines if m.plant == plant.code]
    return demo


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


def demo_token(app_url: str, organization_id: uuid.UUID, secret: str) -> str:
    """An API token of the live plant's technician, for the board and the API during the run."""
    engine = make_engine(app_url, pool_size=1, max_overflow=0)
    try:
        with unit_of_work(make_sessions(engine), Tenant(organization_id)) as s:
            issued = create_token(s, TokenSettings(secret=secret).key(), email=DEMO_TECHNICIAN,
                                  name="mes demo", lifetime=timedelta(hours=12))
    finally:
        engine.dispose()
    return issued.token
