"""A small HTTP endpoint for a service: `/health` (JSON) and `/metrics` (Prometheus text).

Runs in a daemon thread; binds to loopback unless told otherwise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.config_errors import ConfigError

HealthFn = Callable[[], tuple[bool, dict[str, Any]]]


class StatusServer:
    """Serve `health()` -> (healthy, details) on /health (200 or 503) and `registry` on /metrics."""

    def __init__(self, host: str, port: int, health: HealthFn, registry: CollectorRegistry,
                 *, setting: str = "status_port"):
        """Bind now, so that a port another process holds is a ConfigError naming `setting`
        (exit status 2), not a traceback from a thread."""
        handler = _handler(health, registry)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise ConfigError([
                f"{setting}: cannot listen on {host}:{port}: {e.strerror or e}. Another process "
                "(a second agent or ingest?) may hold the port: stop it or choose another port"
            ]) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="status-http",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(health: HealthFn, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif self.path == "/health":
                ok, details = health()
                body = json.dumps({"healthy": ok, **details}, default=str).encode()
                self._send(200 if ok else 503, "application/json", body)
            else:
                self._send(404, "text/plain", b"try /health or /metrics\n")

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the service's own log

    return Handler
