"""What a route receives: the caller (`CurrentUser`), its unit of work (`SessionDep`), a page
(`PageDep`), and the role check of a write (`requires`). Declared once, used by every router.

A request is one transaction on one connection of the application role: authentication
resolves the bearer token through `mes.resolve_api_token` (core.tokens) at its start, before
any tenant is known; the transaction then continues as the unit of work under the caller's
organization, plant scope and user (`Caller.tenant()`), so row-level security confines every
query and `created_by` / `updated_by` are the caller. (One connection, not one for the lookup
and another for the work: half the round trips, `mes bench api`.) It commits when the route
returns and before the response is sent (`scope="function"`): a failed commit is an error
response, never a 200 for something that did not happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.problems import Forbidden, Unauthorized
from core.tenancy import enter_tenant, unit_of_work
from core.tokens import Caller, resolve_token

bearer = HTTPBearer(auto_error=False, description="An API token made by `mes token create`.")


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Iterator[Caller]:
    """The bearer token's caller, found in the request's transaction, which then goes on under
    the caller's tenant as the route's unit of work (`SessionDep`)."""
    if credentials is None:
        raise Unauthorized("send the header Authorization: Bearer <token>")
    state = request.app.state
    state.rate_limiter.check(credentials.credentials)
    with state.sessions.begin() as session:
        caller = resolve_token(session.connection().connection.driver_connection,
                               credentials.credentials, state.token_key)
        if caller is None:
            raise Unauthorized("the token is unknown, expired or revoked, or its user deactivated")
        request.state.user_id = caller.user_id
        tenant = caller.tenant()
        enter_tenant(session, tenant)
        # What new rows are stamped with (api.repositories.base.add); reading needs nothing.
        session.info["tenant"] = tenant
        request.state.session = session
        yield caller


def caller_of(request: Request, token: str) -> Caller | None:
    """Who `token` speaks for (None: nobody), noted for the access log, on a connection of its
    own: the board's way in (its cookie holds the same token). After the token's rate limit
    (api.ratelimit: 429 when it is spent), as in `authenticate`."""
    state = request.app.state
    state.rate_limiter.check(token)
    with state.engine.connect() as conn:
        caller = resolve_token(conn.connection.driver_connection, token, state.token_key)
        conn.rollback()
    if caller is not None:
        request.state.user_id = caller.user_id
    return caller


CurrentUser = Annotated[Caller, Depends(authenticate, scope="function")]


async def unit(request: Request, caller: CurrentUser) -> Session:
    """The transaction `authenticate` opened, under the caller's tenant by now. (Async, as
    `page`: no I/O, so no trip through the thread pool, which a sync dependency takes.)"""
    return request.state.session


def unit_for(request: Request, caller: Caller) -> Iterator[Session]:
    """The caller's unit of work (a dependency's body) for a caller already known: the
    board's, from its cookie."""
    tenant = caller.tenant()
    with unit_of_work(request.app.state.sessions, tenant) as session:
        session.info["tenant"] = tenant
        yield session


SessionDep = Annotated[Session, Depends(unit, scope="function")]

IfMatch = Annotated[str | None, Header(
    description="The `version` last read: the change is refused (412) if the object changed "
    "since.")]


def requires(*roles: str) -> dict[str, Any]:
    """Route options for a write that one of `roles` may make: the check, and `x-roles` in
    the OpenAPI document (tests check every write declares it)."""

    def check(caller: CurrentUser) -> None:
        if not set(roles) & set(caller.roles):
            raise Forbidden(f"this needs one of the roles {', '.join(roles)}")

    return {
        "dependencies": [Depends(check)],
        "openapi_extra": {"x-roles": list(roles)},
        "responses": {403: {"description": "the caller lacks the role"}},
    }


@dataclass(frozen=True)
class Page:
    """A page request: at most `limit` items after `cursor` (from the previous page)."""

    limit: int
    cursor: str | None


async def page(
    request: Request,
    limit: Annotated[int | None, Query(ge=1, description="items per page")] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Page:
    options = request.app.state.settings.api
    return Page(min(limit or options.page_size_default, options.page_size_max), cursor)


PageDep = Annotated[Page, Depends(page)]
