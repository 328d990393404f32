"""API tokens: made once, stored as a keyed digest, resolved through one definer function.

A token reads `mes_<id>_<secret>`: the id (the row's uuid, in hex) says which row to check and
lets an administrator revoke a leaked token by id; the secret is 32 random bytes. The database
keeps only HMAC-SHA256(server secret, token). Why an HMAC and not a password hash (argon2,
bcrypt): a password hash is slow on purpose because passwords are guessable; a token of 256
random bits is not, so stretching adds nothing but ~100 ms of CPU to every API request. The key
(`tokens.secret` in settings) lives outside the database, so a stolen dump does not even let
one test a candidate token. The digests are compared in the database by
`mes.resolve_api_token` byte by byte over their whole length (`mes.digests_equal`), so a
refusal takes the same time however much of a digest was right.

`resolve_token` is what the API's authentication builds on: a token in, the caller's identity
(user, organization, plant scope, roles) out, or None; `Caller.tenant()` is the tenant of the
caller's unit of work.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from pydantic import Field, SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config_model import StrictModel
from core.errors import UserFacingError
from core.models import ApiToken, User
from core.tenancy import Tenant

TOKEN_RE = re.compile(r"^mes_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


class TokenSettings(StrictModel):
    """`tokens.secret`: the HMAC key of API tokens (MES_TOKENS__SECRET), at least 32 characters
    of randomness, the same for every process that makes or checks tokens."""

    secret: SecretStr | None = Field(default=None)

    def key(self) -> bytes:
        value = self.secret.get_secret_value() if self.secret else ""
        if len(value) < 32:
            raise UserFacingError(
                "tokens.secret is not set or shorter than 32 characters: set MES_TOKENS__SECRET "
                "(for example to the output of `python -c \"import secrets; "
                "print(secrets.token_urlsafe(32))\"`)"
            )
        return value.encode()


@dataclass(frozen=True)
class Caller:
    """Who a token speaks for: its user, organization, plant scope (None = organization-wide)
    and roles, as they are now."""

    user_id: uuid.UUID
    organization_id: uuid.UUID
    plant_id: uuid.UUID | None
    roles: tuple[str, ...]

    def tenant(self) -> Tenant:
        """The tenant of this caller's unit of work: RLS confines it to its scope."""
        return Tenant(self.organization_id, self.plant_id, self.user_id)


def digest(key: bytes, token: str) -> bytes:
    return hmac.new(key, token.encode(), hashlib.sha256).digest()


def resolve_token(conn: psycopg.Connection, token: str, key: bytes) -> Caller | None:
    """The caller a token speaks for, or None when it is malformed, unknown, revoked or expired
    or its user is deactivated. `conn` is the application role's; no tenant context needed."""
    match = TOKEN_RE.match(token)
    if match is None:
        return None
    row = conn.execute("SELECT * FROM mes.resolve_api_token(%s, %s)",
                       (uuid.UUID(match[1]), digest(key, token))).fetchone()
    if row is None:
        return None
    user_id, org_id, plant_id, roles = row
    return Caller(user_id, org_id, plant_id, tuple(roles))


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: `token` is shown once and never again."""

    id: uuid.UUID
    token: str
    expires_at: datetime | None


def create_token(session: Session, key: bytes, *, email: str, name: str = "",
                 lifetime: timedelta | None) -> IssuedToken:
    """Make a token for the user `email` of the session's organization."""
    user = session.scalars(select(User).where(User.email == email)).one_or_none()
    if user is None:
        raise UserFacingError(f"no user {email!r} in this organization")
    if not user.is_active:
        raise UserFacingError(f"user {email!r} is deactivated")
    token_id = uuid.uuid4()
    token = f"mes_{token_id.hex}_{secrets.token_urlsafe(32)}"
    expires = datetime.now(UTC) + lifetime if lifetime else None
    session.add(ApiToken(id=token_id, organization_id=user.organization_id,
                         plant_id=user.plant_id, user_id=user.id, name=name,
                         token_hash=digest(key, token), expires_at=expires))
    session.flush()
    return IssuedToken(token_id, token, expires)


@dataclass(frozen=True)
class TokenInfo:
    """A token as `mes token list` shows it (never the token itself)."""

    id: uuid.UUID
    email: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= now:
            return "expired"
        return "active"


def list_tokens(session: Session) -> list[TokenInfo]:
    """Every token of the session's tenant, oldest first."""
    rows = session.execute(
        select(ApiToken, User.email).join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.created_at, ApiToken.id)
    )
    return [TokenInfo(t.id, email, t.name, t.created_at, t.expires_at, t.revoked_at)
            for t, email in rows]


def revoke_token(session: Session, token_id: uuid.UUID) -> bool:
    """Revoke a token of the session's tenant; False when there is no such live token."""
    token = session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = datetime.now(UTC)
    session.flush()
    return True


_DURATION = re.compile(r"^(\d+)([dh])$")


def parse_lifetime(text: str) -> timedelta | None:
    """`30d`, `12h`, or `never` (None)."""
    if text == "never":
        return None
    match = _DURATION.match(text)
    if match is None or int(match[1]) == 0:
        raise UserFacingError(f"--expires {text!r}: expected a duration like 30d or 12h, or never")
    n = int(match[1])
    return timedelta(days=n) if match[2] == "d" else timedelta(hours=n)
