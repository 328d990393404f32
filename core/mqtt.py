"""MQTT connection settings every client of ours shares (edge publisher, ingest consumer)."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ConfigDict, model_validator

from core.config_errors import ConfigError

log = logging.getLogger(__name__)


class TlsConfig(BaseModel):
    """TLS to the broker.

    `insecure` turns off the check of the broker's host name against its certificate. It is
    refused unless TLS is enabled, and it is never on by default: someone has to write it
    down, which makes it visible in review.
    """

    model_config = ConfigDict(extra="forbid")

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


def apply_tls(client: mqtt.Client, tls: TlsConfig, *, section: str, host: str) -> None:
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
