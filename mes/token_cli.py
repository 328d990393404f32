"""`mes token create|list|revoke`: API tokens of an organization's users."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from core.errors import UserFacingError
from core.registry.apply import lookup_organization
from core.settings import Settings, load_settings
from core.tenancy import Tenant, unit_of_work
from core.tokens import TokenSettings, create_token, list_tokens, parse_lifetime, revoke_token
from mes.registry_cli import app_sessions


class TokenCliSettings(Settings):
    """The settings `mes token` reads: the database and the token key."""

    tokens: TokenSettings = TokenSettings()


def register(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("token", help="API tokens: create, list, revoke")
    tok_sub = tok.add_subparsers(dest="token_command", required=True, metavar="COMMAND")

    c = tok_sub.add_parser("create", help="make a token for a user; it is printed once")
    c.add_argument("--org", required=True, metavar="CODE")
    c.add_argument("--user", required=True, metavar="EMAIL")
    c.add_argument("--name", default="", help="what the token is for")
    c.add_argument("--expires", default="90d", metavar="DURATION",
                   help="30d, 12h or never (default 90d)")
    c.set_defaults(func=cmd_create)

    ls = tok_sub.add_parser("list", help="the organization's tokens (never the tokens)")
    ls.add_argument("--org", required=True, metavar="CODE")
    ls.set_defaults(func=cmd_list)

    r = tok_sub.add_parser("revoke", help="revoke a token by its id")
    r.add_argument("--org", required=True, metavar="CODE")
    r.add_argument("token_id", type=uuid.UUID, metavar="ID")
    r.set_defaults(func=cmd_revoke)


def _tenant(sessions: sessionmaker[Session], code: str) -> Tenant:
    org_id = lookup_organization(sessions, code)
    if org_id is None:
        raise UserFacingError(f"no organization {code!r} is registered")
    return Tenant(org_id)


def cmd_create(args: argparse.Namespace) -> int:
    key = load_settings(args.config, cls=TokenCliSettings).tokens.key()
    lifetime = parse_lifetime(args.expires)
    with app_sessions(args.config) as sessions, \
            unit_of_work(sessions, _tenant(sessions, args.org)) as s:
        issued = create_token(s, key, email=args.user, name=args.name, lifetime=lifetime)
    expiry = issued.expires_at.isoformat(timespec="seconds") if issued.expires_at else "never"
    print(f"token {issued.id} for {args.user} (expires {expiry}); shown once, store it now:")
    print(issued.token)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with app_sessions(args.config) as sessions, \
            unit_of_work(sessions, _tenant(sessions, args.org)) as s:
        tokens = list_tokens(s)
    now = datetime.now(UTC)
    print(f"{'id':36}  {'status':7}  {'expires':25}  user / name")
    for t in tokens:
        expiry = t.expires_at.isoformat(timespec="seconds") if t.expires_at else "never"
        print(f"{t.id}  {t.status(now):7}  {expiry:25}  {t.email}"
              + (f" / {t.name}" if t.name else ""))
    print(f"{len(tokens)} token(s)")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    with app_sessions(args.config) as sessions, \
            unit_of_work(sessions, _tenant(sessions, args.org)) as s:
        done = revoke_token(s, args.token_id)
    if not done:
        raise UserFacingError(f"no live token {args.token_id} in organization {args.org!r}")
    print(f"revoked {args.token_id}")
    return 0
