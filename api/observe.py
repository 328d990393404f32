"""Metrics and access logs: a Prometheus counter and latency histogram per route, and one
structured log line per request (method, route, status, duration, user). Never a token, a
query string or a body: those may carry secrets or personal data."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

log = logging.getLogger("api.access")


class ApiMetrics:
    """The API's metrics, on a registry of its own (served at /metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mes_api_requests_total", "API requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("mes_api_request_seconds", "API request duration by route",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))


def _route(request: Request) -> str:
    # The route's template (/v1/machines/{machine_id}), not the path: bounded label values.
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


def install(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.middleware("http")
    async def observe(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = _route(request)
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(elapsed)
            log.info("request", extra={
                "method": request.method, "route": route, "status": status,
                "ms": round(elapsed * 1000, 1),
                "user": str(getattr(request.state, "user_id", "") or "")})
