"""The registry file: organizations with their plants, users, gateways and machines.

A YAML file kept in version control, like the agents' tag maps. Every section is a
`StrictModel` (unknown keys are errors) that owns its defaults; `load_registry` turns every
problem into a ConfigError naming the file, the key path and the entity
(`organizations[0].machines[3].plant: machine 'm009' names unknown plant 'west'`), and nothing
is written unless the whole file is valid. Codes that appear in MQTT topics (organization,
plant, gateway) follow the wire's code rule; machine codes follow the wire's machine rule.

    organizations:
      - code: acme
        name: ACME Manufacturing
        plants:
          - {code: north, name: North plant, timezone: Europe/Berlin}
        users:
          - {email: ada@acme.example, name: Ada Admin, roles: [org_admin]}
          - {email: tom@acme.example, name: Tom Tech, roles: [maintenance], plant: north}
        gateways:
          - {code: gw-north, name: North gateway, plant: north}
        machines:
          - {code: m001, name: Press 1, kind: press, plant: north, tags: {line: l1}}

`active: false` keeps an entity registered but deactivated; `mes registry export` writes the
same format back, defaults left out, so that an exported file applies as a no-op.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.config_errors import ConfigError, describe
from core.config_model import StrictModel
from core.models.user import ROLES
from core.wire import CODE_RE

Role = StrEnum("Role", {r.upper(): r for r in ROLES})  # type: ignore[misc]
# Accounts of the services in the broker's password file, and the topic level the maintenance
# engine publishes under: no gateway may take these codes.
RESERVED_GATEWAY_CODES = frozenset({"mes-ingest", "mes-maintenance", "maintenance"})
_NAME = Field(min_length=1, max_length=200)


def _code(value: str) -> str:
    if not CODE_RE.match(value):
        raise ValueError(
            "expected a code of lowercase letters, digits and '-', starting with a letter or "
            "digit, at most 63 characters (it is a level of the MQTT topic)"
        )
    return value


Code = Annotated[str, AfterValidator(_code)]


class PlantEntry(StrictModel):
    """A plant: code (in topics), name, IANA time zone (shift times are local to it)."""

    code: Code
    name: str = _NAME
    timezone: str = "UTC"
    active: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: expected an IANA name such as Europe/Berlin"
            ) from None
        return value


class UserEntry(StrictModel):
    """A person: roles within a plant (`plant`) or, without one, the whole organization."""

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
    name: str = _NAME
    roles: list[Role] = Field(min_length=1)  # type: ignore[valid-type]
    plant: str | None = Field(default=None, validate_default=True)
    active: bool = True

    @field_validator("roles")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a role is listed twice")
        return value

    @field_validator("plant")
    @classmethod
    def _scope_fits_roles(cls, value: str | None, info: ValidationInfo) -> str | None:
        roles = info.data.get("roles") or []
        if Role.ORG_ADMIN in roles and value:  # type: ignore[attr-defined]
            raise ValueError("org_admin is organization-wide: a user with it has no `plant`")
        if Role.PLANT_ADMIN in roles and not value:  # type: ignore[attr-defined]
            raise ValueError("plant_admin needs the `plant` it administers")
        return value


class GatewayEntry(StrictModel):
    """An edge gateway: its code is its MQTT username and the third level of its topics."""

    code: Code
    name: str = _NAME
    plant: str
    active: bool = True

    @field_validator("code")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_GATEWAY_CODES:
            raise ValueError(f"{value!r} is reserved for the services' broker accounts")
        return value


class MachineEntry(StrictModel):
    """A machine: the code the agent's records name, a kind, free labels (`tags`: line, ...)."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[^\s\"'\\]+$")
    name: str = _NAME
    kind: str | None = Field(default=None, min_length=1, max_length=64)
    plant: str
    tags: dict[str, str] = Field(default_factory=dict)
    active: bool = True


class OrganizationEntry(StrictModel):
    """An organization (a tenant) and everything registered in it."""

    code: Code
    name: str = _NAME
    plants: list[PlantEntry] = Field(default_factory=list)
    users: list[UserEntry] = Field(default_factory=list)
    gateways: list[GatewayEntry] = Field(default_factory=list)
    machines: list[MachineEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> OrganizationEntry:
        problems = list(_organization_problems(self))
        if problems:
            raise ValidationError.from_exception_data("OrganizationEntry", [
                InitErrorDetails(type=PydanticCustomError("registry", msg), loc=loc, input=value)
                for loc, msg, value in problems
            ])
        return self


class Registry(StrictModel):
    """A whole registry file: one or more organizations."""

    organizations: list[OrganizationEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_across_organizations(self) -> Registry:
        problems = [
            (("organizations", i, "code"), "listed twice", org.code)
            for i, org in _repeats(self.organizations, "code")
        ]
        # Gateway codes are unique across organizations: the broker knows a gateway by its code.
        seen: dict[str, str] = {}
        for i, org in enumerate(self.organizations):
            for j, gw in enumerate(org.gateways):
                other = seen.setdefault(gw.code, org.code)
                if other != org.code:
                    problems.append((("organizations", i, "gateways", j, "code"),
                                     f"also listed under organization {other!r}", gw.code))
        if problems:
            raise ValidationError.from_exception_data("Registry", [
                InitErrorDetails(type=PydanticCustomError("registry", msg), loc=loc, input=value)
                for loc, msg, value in problems
            ])
        return self


Loc = tuple[str | int, ...]
Problem = tuple[Loc, str, Any]
_KEYS = {"plants": "code", "users": "email", "gateways": "code", "machines": "code"}


def _repeats(items: list[Any], key: str) -> Iterator[tuple[int, Any]]:
    """(index, item) of every item whose `key` appeared earlier in the list."""
    seen: Counter[str] = Counter()
    for i, item in enumerate(items):
        value = getattr(item, key)
        seen[value] += 1
        if seen[value] > 1:
            yield i, item


def _organization_problems(org: OrganizationEntry) -> Iterator[Problem]:
    for section, key in _KEYS.items():
        for i, item in _repeats(getattr(org, section), key):
            yield (section, i, key), "listed twice", getattr(item, key)
    plants = [p.code for p in org.plants]
    for section in ("users", "gateways", "machines"):
        for i, item in enumerate(getattr(org, section)):
            if item.plant is not None and item.plant not in plants:
                yield (section, i, "plant"), (
                    f"unknown plant (plants of {org.code!r}: {', '.join(plants) or 'none'})"
                ), item.plant


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_registry(data: Any, source: str | Path) -> Registry:
    """Validate data read from `source`; a ConfigError names the file, key path and entity."""
    if not isinstance(data, dict):
        raise ConfigError(["(top level): expected a mapping with `organizations`"], source)
    try:
        return Registry.model_validate(data)
    except ValidationError as e:
        plain = describe(e, file=source, file_data=data)
        located = [
            f"{_entity(data, err['loc'])}{problem}"
            for err, problem in zip(e.errors(), plain.problems, strict=True)
        ]
        raise ConfigError(located, source) from None


def _entity(data: dict[str, Any], loc: tuple[str | int, ...]) -> str:
    """`plant 'north' of 'acme': ` for an error inside that entry, as the user wrote it."""
    try:
        org = data["organizations"][loc[1]]
        where = f"organization {org['code']!r}"
        if len(loc) > 4 and loc[2] in _KEYS:
            entry = org[loc[2]][loc[3]]
            where = f"{str(loc[2]).removesuffix('s')} {entry[_KEYS[str(loc[2])]]!r} of {where}"
    except (KeyError, IndexError, TypeError):
        return ""
    return f"{where}: "


def load_registry(path: str | Path) -> Registry:
    """Read and validate a registry file (YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"cannot read the file: {e.strerror or e}"], path) from None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as e:
        raise ConfigError([f"not valid YAML: {e}"], path) from None
    return parse_registry(data, path)


def dump_registry(registry: Registry) -> str:
    """The registry as YAML in the file's own format, defaults left out."""
    data = registry.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
