"""Configuration of an OPC UA server connection and of one OPC UA tag (the tag map's shape)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from asyncua import ua
from pydantic import Field, ValidationInfo, field_validator, model_validator

from core.config_model import StrictModel


class SecurityPolicy(StrEnum):
    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"


class SecurityMode(StrEnum):
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class AcquisitionMode(StrEnum):
    """`subscribe`: data-change subscriptions (reads only for nodes that refuse them);
    `poll`: batched reads of every tag each `poll_interval_s`."""

    SUBSCRIBE = "subscribe"
    POLL = "poll"


class TimestampSource(StrEnum):
    """The clock that stamps a changed value (drivers.opcua.timestamps): the PLC's
    SourceTimestamp (else the server's, else receive time), the server's, or the agent's."""

    SOURCE = "source"
    SERVER = "server"
    AGENT = "agent"


class ExpectedType(StrEnum):
    """The value family a tag must have; a value of another family is reported as an error."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"


class OpcUaTag(StrictModel):
    """A tag read from one OPC UA node.

    `node_id` is the standard string form: `ns=2;s=Line1.Speed`, `ns=3;i=1001`, `i=2258`, or
    `nsu=<namespace uri>;s=...` (the index is looked up on the server at connect).
    """

    node_id: str
    expected_type: ExpectedType | None = None

    @field_validator("node_id")
    @classmethod
    def _parses(cls, v: str) -> str:
        try:
            ua.NodeId.from_string(v)
        except (ua.UaStringParsingError, ValueError) as e:
            raise ValueError(
                f"not an OPC UA node id ({e}); expected e.g. 'ns=2;s=Line1.Speed' or 'ns=2;i=1001'"
            ) from None
        return v


class OpcUaWorkarounds(StrictModel):
    """Server quirks, in one named place."""

    max_nodes_per_read: int = Field(default=1000, ge=1)
    max_items_per_subscribe: int = Field(default=1000, ge=1)


class OpcUaDevice(StrictModel):
    """An OPC UA server. Certificate paths are relative to the tag map's folder.

    With `security_policy: Basic256Sha256`, `certificate` (DER or PEM) and `private_key` (PEM)
    identify this agent; `server_certificate` pins the server's certificate (without it, the
    one the server presents is accepted). `username` and `password` log in; without them the
    session is anonymous.
    """

    protocol: Literal["opcua"]
    name: str = Field(min_length=1, max_length=64)
    endpoint: str = Field(pattern=r"^opc\.tcp://[^/\s:]+(:\d+)?(/\S*)?$")
    security_policy: SecurityPolicy = SecurityPolicy.NONE
    security_mode: SecurityMode = SecurityMode.SIGN_AND_ENCRYPT
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None
    application_uri: str | None = None
    username: str | None = Field(default=None, min_length=1)
    password: str | None = None
    mode: AcquisitionMode = AcquisitionMode.SUBSCRIBE
    sampling_interval_ms: float = Field(default=500.0, ge=0)
    publishing_interval_ms: float = Field(default=1000.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    timeout_s: float = Field(default=4.0, gt=0, le=120)
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    timestamps: TimestampSource = TimestampSource.SOURCE
    max_clock_skew_s: float = Field(default=5.0, gt=0, le=86400)
    workarounds: OpcUaWorkarounds = OpcUaWorkarounds()

    @field_validator("certificate", "private_key", "server_certificate")
    @classmethod
    def _existing_file(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return None
        base = (info.context or {}).get("base_dir")
        path = v if v.is_absolute() or base is None else Path(base) / v
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        return path

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaDevice:
        secured = self.security_policy is not SecurityPolicy.NONE
        if secured and (self.certificate is None or self.private_key is None):
            raise ValueError(
                f"security_policy {self.security_policy.value} needs certificate and private_key"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (neither: anonymous)")
        return self
