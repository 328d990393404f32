"""The simulator's options: one typed model owns every default (CLI, handle and tests use it)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator

from core.config_model import StrictModel
from mes.services.ports import LOOPBACK, free_port
from mes.sim.layout import MAX_MODBUS_MACHINES


class Protocol(StrEnum):
    MODBUS = "modbus"
    OPCUA = "opcua"


class Assignment(StrEnum):
    """Which machines each protocol serves."""

    BOTH = "both"  # every machine on every protocol that runs
    SPLIT = "split"  # the first half on Modbus, the rest on OPC UA (as `mes bench edge` needs)


class SimConfig(StrictModel):
    """What to simulate and where to serve it. Ports left unset get free loopback ports."""

    machines: int = Field(default=4, ge=1, le=1000)
    seed: int = 1
    speed: float = Field(default=1.0, gt=0, description="machine seconds per wall-clock second")
    tick_s: float = Field(default=0.1, gt=0, description="wall-clock seconds between model steps")
    min_dwell_s: float = Field(
        default=0.0, ge=0, description="shortest time (wall clock) any state lasts"
    )
    extra_tags: int = Field(default=0, ge=0, le=1000, description="extra analog tags per machine")
    protocols: tuple[Protocol, ...] = (Protocol.MODBUS, Protocol.OPCUA)
    assignment: Assignment = Assignment.BOTH
    host: str = LOOPBACK
    modbus_port: int | None = Field(default=None, ge=1, le=65535)
    opcua_port: int | None = Field(default=None, ge=1, le=65535)
    truth: Path | None = None

    @model_validator(mode="after")
    def _fits_modbus(self) -> SimConfig:
        if Protocol.MODBUS in self.protocols and len(self.modbus_indexes) > MAX_MODBUS_MACHINES:
            raise ValueError(f"Modbus serves at most {MAX_MODBUS_MACHINES} machines (unit ids)")
        return self

    @property
    def dt(self) -> float:
        """Machine seconds per model step."""
        return self.tick_s * self.speed

    def _served(self, protocol: Protocol) -> list[int]:
        if protocol not in self.protocols:
            return []
        if self.assignment is Assignment.BOTH or len(self.protocols) == 1:
            return list(range(self.machines))
        half = (self.machines + 1) // 2
        if protocol is Protocol.MODBUS:
            return list(range(half))
        return list(range(half, self.machines))

    @property
    def modbus_indexes(self) -> list[int]:
        """Indexes of the machines served over Modbus."""
        return self._served(Protocol.MODBUS)

    @property
    def opcua_indexes(self) -> list[int]:
        """Indexes of the machines served over OPC UA."""
        return self._served(Protocol.OPCUA)

    def with_ports(self) -> SimConfig:
        """This config with a free loopback port filled in for every protocol that runs."""
        update = {}
        if Protocol.MODBUS in self.protocols and self.modbus_port is None:
            update["modbus_port"] = free_port()
        if Protocol.OPCUA in self.protocols and self.opcua_port is None:
            update["opcua_port"] = free_port()
        return self.model_copy(update=update)

    def to_args(self) -> list[str]:
        """The `mes sim` command-line options that give this config."""
        args = [
            "--machines", str(self.machines), "--seed", str(self.seed),
            "--speed", repr(self.speed), "--tick", repr(self.tick_s),
            "--min-dwell", repr(self.min_dwell_s), "--extra-tags", str(self.extra_tags),
            "--protocols", ",".join(p.value for p in self.protocols),
            "--assignment", self.assignment.value, "--host", self.host,
        ]
        if self.modbus_port is not None:
            args += ["--modbus-port", str(self.modbus_port)]
        if self.opcua_port is not None:
            args += ["--opcua-port", str(self.opcua_port)]
        if self.truth is not None:
            args += ["--truth", str(self.truth)]
        return args
