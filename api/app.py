"""The FastAPI application, built by `create_app(settings)`: nothing happens at import.

The engine is made in the lifespan (and disposed at shutdown); the token key is checked when
the app is built, so a missing `tokens.secret` stops `mes api` before it listens.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text

from api import board, observe, problems, stream
from api.admission import Admission
from api.ratelimit import RateLimiter
from api.routers import PREFIX, dead_letters, machines, maintenance, production, quality, shifts
from api.settings import ApiSettings
from core.db import make_engine, make_sessions

DESCRIPTION = """\
Machines, downtime, work orders, quality, shifts and preventive maintenance of the plants you
may see. Authenticate with `Authorization: Bearer <token>` (a token from `mes token create`).
Every request runs under your organization and plant scope: objects outside it do not exist
for you (404). Writes need a role (the `x-roles` of each operation). Lists are pages: pass
`next_cursor` as `cursor` for the next. Errors are RFC 9457 problem details.
"""


def create_app(settings: ApiSettings) -> FastAPI:
    token_key = settings.tokens.key()
    metrics = observe.ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database.application_url(),
                             pool_size=settings.api.pool_size, max_overflow=0)
        app.state.engine = engine
        app.state.sessions = make_sessions(engine)
        app.state.hub = stream.Hub(settings.database.application_url())
        listener = asyncio.create_task(app.state.hub.run(), name="stream-listener")
        try:
            yield
        finally:
            listener.cancel()
            engine.dispose()

    app = FastAPI(title="Plant-floor MES API", version="1", description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.token_key = token_key
    app.state.rate_limiter = RateLimiter(settings.api.rate_limit_per_s,
                                         settings.api.rate_limit_burst)
    problems.install(app)
    # Observe outermost: the time a request waits for admission is part of its latency.
    app.add_middleware(Admission, slots=settings.api.pool_size)
    app.add_middleware(observe.Observe, metrics=metrics)
    for module in (machines, production, quality, shifts, maintenance, dead_letters, stream):
        app.include_router(module.router)
    board.install(app)

    def openapi() -> dict[str, Any]:
        # Built once, as FastAPI does, with the problem documents every operation can answer.
        if app.openapi_schema is None:
            app.openapi_schema = problems.document(FastAPI.openapi(app), PREFIX)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        try:
            with app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any failure to reach the database is "unhealthy", said as such
            return JSONResponse({"healthy": False, "database": "unreachable"}, status_code=503)
        return JSONResponse({"healthy": True, "database": "ok"})

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        registry = metrics.registry
        if os.environ.get(observe.METRICS_DIR_ENV):  # several workers: the sum of all of theirs
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
