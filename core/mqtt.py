"""MQTT connection settings every client of ours shares, and the one place a paho client is built.

The edge publisher (`broker:` in a tag map) and the ingest consumer (`[mqtt]` in its settings)
both extend `MqttConnection` with what is theirs (batching, subscriptions, sessions) and both
get their paho client from `build_client`: protocol version, session kind, credentials and TLS
are set here and nowhere else.
"""

from __future__ import annotations

import logging
import os
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import Field, SecretStr, model_validator

from core.config_errors import ConfigError
from core.config_model import StrictModel, ordered

log = logging.getLogger(__name__)


class MqttProtocol(StrEnum):
    """MQTT 5 is the default: only under MQTT 5 does a PUBACK say "Not authorized", and only it
    has receive maximum, session expiry and shared subscriptions (docs/edge-agent.md, "Why
    MQTT 5"). 3.1.1 is for a broker without MQTT 5."""

    MQTT5 = "mqtt5"
    MQTT311 = "mqtt311"


class TlsConfig(StrictModel):
    """TLS to the broker.

    `insecure` turns off the check of the broker's host name against its certificate. It is
    refused unless TLS is enabled, and it is never on by default: someone has to write it
    down, which makes it visible in review.
    """

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> TlsConfig:
        if not self.enabled:
            given = [n for n in ("ca_file", "cert_file", "key_file") if getattr(self, n)]
            if given or self.insecure:
                names = ", ".join(given + (["insecure"] if self.insecure else []))
                raise ValueError(f"{names} given but tls.enabled is false")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate and its key)")
        return self


class MqttConnection(StrictModel):
    """Where a client connects and how it logs in; each client's settings extend this.

    `port` has no default here: each client chooses its own (the edge's follows TLS).
    `reconnect_min_s` and `reconnect_max_s` bound the waits between connection attempts.
    """

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    protocol: MqttProtocol = MqttProtocol.MQTT5
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsConfig = Field(default_factory=TlsConfig)
    # MQTT carries the keepalive in two bytes; below 5 s a busy link is taken for a dead one.
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _credentials_and_pacing(self) -> MqttConnection:
        ordered(self, "reconnect_min_s", "reconnect_max_s")
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        return self

    @property
    def v5(self) -> bool:
        """True when the client speaks MQTT 5."""
        return self.protocol is MqttProtocol.MQTT5


def build_client(
    settings: MqttConnection,
    *,
    client_id: str,
    section: str,
    persistent_session: bool,
    **options: Any,
) -> mqtt.Client:
    """A paho client, not yet connected: protocol, client id, session kind, login and TLS set.

    Under MQTT 3.1.1 `persistent_session` is the clean-session flag; under MQTT 5 the session
    is chosen at connect (clean start, session expiry), so the caller passes those there.
    `section` names the settings in errors (`broker`, `mqtt`); `options` go to paho's Client
    (`manual_ack`, `reconnect_on_failure`). A certificate that cannot be loaded is a ConfigError.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if settings.v5 else mqtt.MQTTv311,
        clean_session=None if settings.v5 else not persistent_session,
        **options,
    )
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    _apply_tls(client, settings.tls, section=section, host=settings.host)
    return client


def _apply_tls(client: mqtt.Client, tls: TlsConfig, *, section: str, host: str) -> None:
    """Configure TLS on a paho client; a certificate that cannot be loaded is a ConfigError."""
    if not tls.enabled:
        return
    # ssl's errors name neither the setting nor the file: say which one it is.
    files = {n: p for n in ("ca_file", "cert_file", "key_file") if (p := getattr(tls, n))}
    # os.path.isfile, not Path.is_file: a folder we may not read is "no such file", not a raise.
    missing = [f"{section}.tls.{n}: no such file: {p}" for n, p in files.items()
               if not os.path.isfile(p)]
    if missing:
        raise ConfigError(missing)
    try:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (OSError, ssl.SSLError) as e:
        given = ", ".join(f"{n} {p}" for n, p in files.items()) or "the system's CA store"
        raise ConfigError([f"{section}.tls: cannot load the certificates ({given}): {e}"]) from None
    if tls.insecure:
        log.warning(
            f"{section}.tls.insecure is set: the broker's host name is not checked against "
            "its certificate",
            extra={"host": host},
        )
        client.tls_insecure_set(True)
