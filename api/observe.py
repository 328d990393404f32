"""Metrics and access logs: a Prometheus counter and latency histogram per route, and one
structured log line per request (method, route, status, duration, user). Never a token, a
query string or a body: those may carry secrets or personal data."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("api.access")

# prometheus_client's multiprocess mode, with several workers (api.cli): each worker writes
# its metrics to files in this folder, read when prometheus_client is imported, and /metrics
# adds up all workers' (prometheus_client.multiprocess).
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ApiMetrics:
    """The API's metrics, on a registry of its own (served at /metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mes_api_requests_total", "API requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("mes_api_request_seconds", "API request duration by route",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))


class Observe:
    """ASGI middleware (not BaseHTTPMiddleware: the router records the matched route in the
    scope it was given, which only a pure ASGI middleware shares)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            elapsed = time.perf_counter() - started
            # The route's template (/v1/machines/{machine_id}): bounded label values.
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            user = scope.get("state", {}).get("user_id")
            log.info("request", extra={"method": method, "route": route, "status": status,
                                       "ms": round(elapsed * 1000, 1),
                                       "user": str(user) if user else ""})
