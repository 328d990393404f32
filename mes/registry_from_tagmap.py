"""Registry entries implied by agents' tag maps (`mes registry from-tagmap MAP...`).

A tag map names its organization, plant and gateway, and its machines with their codes and
names: that is what a new gateway needs registered, so one command prints it, ready to be
reviewed and merged into the registry file. Names the map does not hold (organization, plant,
gateway) are filled with placeholders to review, and the plant's time zone is UTC until set.
"""

from __future__ import annotations

from pathlib import Path

from core.registry.model import (
    GatewayEntry,
    MachineEntry,
    OrganizationEntry,
    PlantEntry,
    Registry,
)
from edge_agent.tagmap import load_agent_config


def registry_from_tagmaps(paths: list[Path]) -> Registry:
    """The organizations, plants, gateways and machines the tag maps at `paths` imply,
    merged (several gateways of one plant share it), validated like any registry file."""
    orgs: dict[str, dict[str, dict]] = {}
    for path in paths:
        config = load_agent_config(path)
        ident = config.gateway
        org = orgs.setdefault(ident.org, {"plants": {}, "gateways": {}, "machines": {}})
        org["plants"].setdefault(ident.plant, PlantEntry(
            code=ident.plant, name=f"{ident.plant} (review)"))
        org["gateways"][ident.gateway] = GatewayEntry(
            code=ident.gateway, name=f"{ident.gateway} (review)", plant=ident.plant)
        for machine in config.machines:
            org["machines"][machine.code] = MachineEntry(
                code=machine.code, name=machine.name or machine.code, plant=ident.plant)
    return Registry(organizations=[
        OrganizationEntry(code=code, name=f"{code} (review)",
                          **{section: list(items.values()) for section, items in parts.items()})
        for code, parts in orgs.items()
    ])
