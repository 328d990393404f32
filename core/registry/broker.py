"""Broker credentials and ACL from the registry (`mes registry broker-config`).

Every active gateway gets its own mosquitto account, named by its code, allowed to publish only
under `mes/v1/{org}/{plant}/{gateway}/#` (its records, its retained status and its last will);
the ingest account reads `mes/v1/#` (plainly or through the shared subscription), the
maintenance account publishes `mes/v1/{org}/{plant}/maintenance/task` and `.../summary`. A
deactivated gateway is left out of both files, so the broker refuses it.

Secrets are 32 random bytes made here, handed out once (a 0600 file per account) and kept
nowhere: the database holds only the PBKDF2-SHA512 hash in mosquitto's own `$7$` format, made
with hashlib exactly as mosquitto_passwd 2.0 makes it (salt 12 bytes, 101 iterations; a test
checks the two agree), so that the password file can be written again at any time from the
database without knowing any secret, and without mosquitto's tools installed. Rotating an
account replaces its hash and hands out a new secret; the old one stops working when the
broker reloads its files (SIGHUP).

The credentials table is broker-wide, not a tenant's: this module runs as the owner
(`SET LOCAL ROLE mes_owner`), whose identity-lookup policies let it read every gateway with
its organization and plant.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from core.errors import UserFacingError
from core.wire import TOPIC_ROOT

INGEST_ACCOUNT = "mes-ingest"
MAINTENANCE_ACCOUNT = "mes-maintenance"
SERVICE_ACLS = {
    INGEST_ACCOUNT: [f"topic read {TOPIC_ROOT}/#", f"topic read $share/ingest/{TOPIC_ROOT}/#"],
    MAINTENANCE_ACCOUNT: [f"topic write {TOPIC_ROOT}/+/+/maintenance/task",
                          f"topic write {TOPIC_ROOT}/+/+/maintenance/summary"],
}
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes; each connect pays it once


def mosquitto_hash(secret: str, salt: bytes | None = None,
                   iterations: int = PBKDF2_ITERATIONS) -> str:
    """A password file hash as mosquitto 2.0 writes it: `$7$iterations$salt$hash` (base64)."""
    salt = salt or os.urandom(12)
    dk = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


@dataclass(frozen=True)
class GatewayAccount:
    """An active gateway as the broker knows it."""

    gateway_id: uuid.UUID
    code: str
    organization: str
    plant: str

    @property
    def prefix(self) -> str:
        return f"{TOPIC_ROOT}/{self.organization}/{self.plant}/{self.code}"


@dataclass
class BrokerConfig:
    """The two files and the secrets handed out by this run (account -> secret)."""

    passwd: str
    acl: str
    new_secrets: dict[str, str] = field(default_factory=dict)


def render_acl(gateways: list[GatewayAccount]) -> str:
    lines = ["# Written by `mes registry broker-config` from the registry: do not edit.",
             "# Each gateway may publish only on its own topics, one level below its prefix",
             "# (`+`, not `#`: the broker refuses deeper or shallower topics)."]
    for user, rules in SERVICE_ACLS.items():
        lines += ["", f"user {user}", *rules]
    for gw in gateways:
        lines += ["", f"user {gw.code}", f"topic write {gw.prefix}/+"]
    return "\n".join(lines) + "\n"


def render_passwd(hashes: dict[str, str]) -> str:
    return "".join(f"{user}:{hashes[user]}\n" for user in sorted(hashes))


def broker_config(conn: psycopg.Connection, *, rotate: tuple[str, ...] = ()) -> BrokerConfig:
    """Give every account without a credential (and every account in `rotate`) a new secret,
    store the hashes, and render the password file and ACL, in one owner transaction."""
    with conn.transaction():
        conn.execute("SET LOCAL ROLE mes_owner")
        gateways = _active_gateways(conn)
        accounts: dict[str, uuid.UUID | None] = dict.fromkeys(SERVICE_ACLS)
        accounts |= {gw.code: gw.gateway_id for gw in gateways}
        unknown = sorted(set(rotate) - set(accounts))
        if unknown:
            raise UserFacingError(f"--rotate {', '.join(unknown)}: no such active gateway or "
                                  f"service account ({', '.join(SERVICE_ACLS)})")
        hashes = dict(conn.execute(
            "SELECT username, password_hash FROM mes.broker_credentials").fetchall())
        new: dict[str, str] = {}
        for user, gateway_id in accounts.items():
            if user in hashes and user not in rotate:
                continue
            new[user] = secrets.token_urlsafe(32)
            hashes[user] = mosquitto_hash(new[user])
            conn.execute(
                "INSERT INTO mes.broker_credentials (username, gateway_id, password_hash) "
                "VALUES (%s, %s, %s) ON CONFLICT (username) DO UPDATE "
                "SET password_hash = excluded.password_hash, rotated_at = now()",
                (user, gateway_id, hashes[user]))
    live = {user: hashes[user] for user in accounts}
    return BrokerConfig(render_passwd(live), render_acl(gateways), new)


def _active_gateways(conn: psycopg.Connection) -> list[GatewayAccount]:
    rows = conn.execute(
        """SELECT g.id, g.code, o.code, p.code
           FROM mes.gateways g
           JOIN mes.organizations o ON o.id = g.organization_id
           JOIN mes.plants p ON p.id = g.plant_id
           WHERE g.is_active
           ORDER BY o.code, p.code, g.code""").fetchall()
    return [GatewayAccount(*row) for row in rows]


def write_broker_files(config: BrokerConfig, out: Path) -> list[Path]:
    """`passwd` and `acl` in `out`, and one `secrets/<account>.secret` (0600) per new secret.
    Returns the secret files written."""
    out.mkdir(parents=True, exist_ok=True)
    _write_private(out / "passwd", config.passwd)
    (out / "acl").write_text(config.acl)
    written = []
    if config.new_secrets:
        folder = out / "secrets"
        folder.mkdir(mode=0o700, exist_ok=True)
        for user, secret in sorted(config.new_secrets.items()):
            path = folder / f"{user}.secret"
            _write_private(path, secret + "\n")
            written.append(path)
    return written


def _write_private(path: Path, content: str) -> None:
    """Write a file only its owner can read, without a moment in which others could."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
