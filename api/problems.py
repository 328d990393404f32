"""Errors as RFC 9457 problem details (`application/problem+json`).

Every error response has `type`, `title`, `status` and `detail`; validation errors add
`errors`, each naming its field. Nothing from the database or a traceback ever reaches a
response: database errors become a fixed sentence, anything unexpected a bare 500 (the
details go to the log).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import errors as pg
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("api")

PROBLEM = "application/problem+json"


class ApiError(Exception):
    """An error a client can act on; subclasses fix the status and title."""

    status = 400
    title = "Bad request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Unauthorized(ApiError):
    status = 401
    title = "Not authenticated"
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ApiError):
    status = 403
    title = "Forbidden"


class NotFound(ApiError):
    """Also what another tenant's object is: its existence is not revealed."""

    status = 404
    title = "Not found"


class Conflict(ApiError):
    status = 409
    title = "Conflict"


class PreconditionFailed(ApiError):
    status = 412
    title = "Precondition failed"


class Invalid(ApiError):
    """A request that is well-formed but names something that is not there or not allowed."""

    status = 422
    title = "Unprocessable content"

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", errors=[{"field": field, "message": message}])


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    # ("body", "assignee_id") -> "assignee_id"; ("query", "limit") -> "limit"
    parts = [str(p) for p in loc[1:]] or [str(p) for p in loc]
    return ".".join(parts)


# SQLSTATE classes a request can cause; the message stays generic on purpose.
_DATABASE_PROBLEMS: list[tuple[type[Exception], int, str, str]] = [
    (pg.UniqueViolation, 409, "Conflict", "an object with these values already exists"),
    (pg.ForeignKeyViolation, 422, "Unprocessable content", "a referenced object does not exist"),
    (pg.NotNullViolation, 422, "Unprocessable content", "a required value is missing"),
    (pg.CheckViolation, 422, "Unprocessable content", "a value is out of its allowed range"),
    (pg.InsufficientPrivilege, 404, "Not found", "no such object in your scope"),
    (pg.SerializationFailure, 409, "Conflict", "a concurrent change won: retry"),
    (pg.LockNotAvailable, 409, "Conflict", "the object is being changed: retry"),
    # Class 22 and the driver's own refusals: a value the column cannot hold (NUL in text,
    # a number or time out of the type's range, text longer than the column).
    (pg.DataError, 422, "Unprocessable content",
     "a value cannot be stored: text without NUL characters, numbers and times within range"),
]


# What each error status of an operation means, as the OpenAPI document says it.
_ERRORS = {
    400: "the body is not JSON text",
    401: "no valid bearer token",
    403: "the caller lacks the role",
    404: "no such object in your scope (another tenant's objects do not exist for you)",
    409: "the object's state does not allow this, or a concurrent change won",
    412: "the object changed since the If-Match version",
    422: "invalid input: `errors` names each field",
    429: "too many requests for this token: wait Retry-After seconds",
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation of /v1 can answer: every one may be unauthenticated,
    invalid or throttled; one naming an object may not find it; a write may conflict; one
    taking If-Match may find the object changed; one with roles may refuse the caller."""
    params = operation.get("parameters", [])
    codes = {401, 422, 429} | {int(c) for c in operation.get("responses", {})
                               if c.isdigit() and 400 <= int(c) < 500}
    if "{" in path or any(p["name"] == "plant_id" and p["in"] == "query" for p in params):
        codes.add(404)
    if method != "get":
        codes |= {404, 409}
    if "requestBody" in operation:
        codes.add(400)
    if any(p["name"] == "if-match" and p["in"] == "header" for p in params):
        codes.add(412)
    return codes


def document(spec: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`spec` (an OpenAPI document) with the problem document of every error status each
    operation under `prefix` can answer, in place of FastAPI's default 422 shape."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in spec.get("paths", {}).items():
        if not path.startswith(prefix):
            continue
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for code in sorted(error_statuses(path, method, operation)):
                responses[str(code)] = {"description": _ERRORS[code], "content": content}
    return spec


def install(app: FastAPI) -> None:
    """Make every error of `app` a problem document."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        return problem(e.status, e.title, e.detail, e.headers, **e.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return problem(e.status_code, str(e.detail), str(e.detail), e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(err["loc"])), "message": err["msg"]}
                  for err in e.errors()]
        detail = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
        return problem(422, "Unprocessable content", detail, errors=errors)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, e: DBAPIError) -> JSONResponse:
        for cls, status, title, detail in _DATABASE_PROBLEMS:
            if isinstance(e.orig, cls):
                return problem(status, title, detail)
        log.error("database error", extra={"path": request.url.path,
                                           "sqlstate": getattr(e.orig, "sqlstate", None)},
                  exc_info=e)
        return problem(500, "Internal server error", "the request could not be completed")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.error("unexpected error", extra={"path": request.url.path}, exc_info=e)
        return problem(500, "Internal server error", "the request could not be completed")
