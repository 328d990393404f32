"""Signing in to the board: a user's API token, kept in a cookie the page's scripts cannot read.

The login form takes the token (`mes token create`), checks it exactly as the API does
(api.deps.caller_of) and stores it in `mes_board`: HttpOnly, Secure, SameSite=Strict, expiring
after `api.board_session_h` hours (and useless as soon as the token expires or is revoked, since
every request resolves it again). Logging out clears it.

Writes are CSRF-safe twice over: SameSite=Strict keeps the cookie off requests started by other
sites, and every form carries a token derived from the cookie's token with the server's key,
which another site cannot read or compute; a POST without the right one is refused (403).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.deps import caller_of, unit_for
from api.problems import Forbidden
from core.tokens import Caller

COOKIE = "mes_board"
MAX_FORM_BYTES = 64 * 1024


class SignIn(Exception):
    """No valid board cookie: the page answers with a redirect to the login form."""


def board_caller(request: Request) -> Caller:
    token = request.cookies.get(COOKIE)
    caller = caller_of(request, token) if token else None
    if caller is None:
        raise SignIn()
    return caller


BoardCaller = Annotated[Caller, Depends(board_caller)]


def board_unit(request: Request, caller: BoardCaller) -> Iterator[Session]:
    yield from unit_for(request, caller)


BoardSession = Annotated[Session, Depends(board_unit, scope="function")]


def csrf_token(request: Request) -> str:
    """The form token of this sign-in: an HMAC of the cookie's token under the server's key."""
    token = request.cookies.get(COOKIE, "")
    return hmac.new(request.app.state.token_key, b"board-csrf:" + token.encode(),
                    hashlib.sha256).hexdigest()


async def form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form whose CSRF token is right (403 otherwise)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Forbidden("the form is too large")
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if COOKIE in request.cookies and not hmac.compare_digest(
            fields.pop("csrf", ""), csrf_token(request)):
        raise Forbidden("the form is stale or came from another site: reload the page")
    return fields


Form = Annotated[dict[str, str], Depends(form)]
