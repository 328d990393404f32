"""POST task events to a plant's webhooks, signed, retried, logged.

Each history row becomes one delivery per active webhook of its organization (and plant)
made after the webhook was. The body is the event document (payload.py); headers:
`X-MES-Event-Id` (the history row), `X-MES-Delivery` (the delivery row), `X-MES-Timestamp`
(unix seconds) and `X-MES-Signature: sha256=<hex>`, the HMAC-SHA256 with the webhook's secret
of `{timestamp}.{body}`. A delivery is claimed with FOR UPDATE SKIP LOCKED (two engines never
post the same one), posted while its row is locked, and marked `delivered` on a 2xx in the
same transaction, so a receiver that answered 2xx is not posted to again; any other answer or
error is retried with core.backoff's delays until `webhook_max_attempts`, then `failed`.
(Only a crash between the 2xx and the commit repeats a delivery: the receiver can drop it by
its `X-MES-Delivery`.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

import psycopg

from core.backoff import Backoff
from core.tenancy import Tenant, tenant_transaction
from ingest.maintenance.payload import task_events
from ingest.maintenance.settings import MaintenanceOptions

log = logging.getLogger(__name__)

_ENQUEUE = """
INSERT INTO mes.pm_webhook_deliveries (organization_id, plant_id, webhook_id, history_id,
                                       next_attempt_at)
SELECT h.organization_id, h.plant_id, w.id, h.id, %(now)s
FROM mes.pm_task_history h
JOIN mes.pm_webhooks w ON w.organization_id = h.organization_id AND w.is_active
     AND (w.plant_id IS NULL OR w.plant_id = h.plant_id) AND h.at >= w.created_at
WHERE h.at > %(now)s - interval '7 days'
ON CONFLICT DO NOTHING
"""

_CLAIM = """
SELECT d.id, d.history_id, d.attempts, w.url, w.secret
FROM mes.pm_webhook_deliveries d JOIN mes.pm_webhooks w ON w.id = d.webhook_id
WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s AND w.is_active
ORDER BY d.next_attempt_at, d.id
LIMIT 1
FOR UPDATE OF d SKIP LOCKED
"""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-MES-Signature value of a body: `sha256=` and the hex HMAC of `{ts}.{body}`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def retry_delay(options: MaintenanceOptions, attempts: int) -> float:
    """The wait after the `attempts`-th failure, on core.backoff's schedule."""
    backoff = Backoff(options.webhook_retry_min_s, options.webhook_retry_max_s)
    delay = 0.0
    for _ in range(max(1, attempts)):
        delay = backoff.delay()
    return delay


class WebhookSender:
    """Makes and sends a tenant's deliveries."""

    def __init__(self, options: MaintenanceOptions) -> None:
        self.options = options

    def deliver_pending(self, conn: psycopg.Connection, tenant: Tenant, now: datetime,
                        limit: int = 200) -> int:
        """Enqueue new events, then post due deliveries one transaction each; returns how
        many were delivered now."""
        with tenant_transaction(conn, tenant):
            conn.execute(_ENQUEUE, {"now": now})
        delivered = 0
        for _ in range(limit):
            with tenant_transaction(conn, tenant):
                row = conn.execute(_CLAIM, {"now": now}).fetchone()
                if row is None:
                    break
                delivered += self._post(conn, now, *row)
        return delivered

    def _post(self, conn: psycopg.Connection, now: datetime, delivery: object, history: object,
              attempts: int, url: str, secret: str) -> int:
        events = task_events(conn, [history])  # type: ignore[list-item]
        body = json.dumps(events[0][3], default=str).encode() if events else b"{}"
        ts = str(int(time.time()))
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "X-MES-Event-Id": str(history),
            "X-MES-Delivery": str(delivery), "X-MES-Timestamp": ts,
            "X-MES-Signature": sign(secret, ts, body)})
        code, error = None, None
        try:
            with urllib.request.urlopen(request, timeout=self.options.webhook_timeout_s) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code, error = e.code, f"HTTP {e.code}"
        except OSError as e:
            error = str(e)[:500]
        attempts += 1
        if code is not None and 200 <= code < 300:
            conn.execute("UPDATE mes.pm_webhook_deliveries SET status = 'delivered', "
                         "attempts = %s, last_status_code = %s, last_error = NULL, "
                         "delivered_at = now() WHERE id = %s", (attempts, code, delivery))
            return 1
        status = "failed" if attempts >= self.options.webhook_max_attempts else "pending"
        wait = timedelta(seconds=retry_delay(self.options, attempts))
        conn.execute("UPDATE mes.pm_webhook_deliveries SET status = %s, attempts = %s, "
                     "last_status_code = %s, last_error = %s, next_attempt_at = %s "
                     "WHERE id = %s", (status, attempts, code, error, now + wait, delivery))
        log.warning("webhook delivery failed", extra={"url": url, "status": code,
                                                      "error": error, "attempts": attempts})
        return 0
