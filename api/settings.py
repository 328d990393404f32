"""Settings of `mes api`: the common sections plus `api` and `tokens`.

Environment: `MES_API__PORT`, `MES_TOKENS__SECRET`, ...; file: `[api]`, `[tokens]`.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from core.config_model import StrictModel
from core.intake.validator import Limits
from core.settings import Settings
from core.tokens import TokenSettings


class ApiOptions(StrictModel):
    """Where the API listens, how large a page may be, and its database pool."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=0, le=65535)
    page_size_default: int = Field(default=50, ge=1)
    page_size_max: int = Field(default=500, ge=1)
    # Database connections of each worker process (and requests at work in it at once).
    pool_size: int = Field(default=10, ge=1)
    # uvicorn worker processes; None: one per CPU. Each has its own pool, live-stream
    # listener and rate-limit counts (docs/api.md, "Worker processes").
    workers: int | None = Field(default=None, ge=1)
    # Requests per API token: `rate_limit_burst` at once, `rate_limit_per_s` a second on
    # average (api.ratelimit); 0 turns the limit off. A person's client stays far below.
    rate_limit_per_s: float = Field(default=20, ge=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    # Bounds the live stream's wait between keep-alive comments (proxies close idle streams).
    stream_keepalive_s: float = Field(default=15, gt=0)
    # How long a board sign-in lasts (the cookie's Max-Age); the token's own expiry still rules.
    board_session_h: float = Field(default=12, gt=0)


class IngestLimits(Limits):
    """The ingest's message limits, which a dead-letter replay checks again: read from the
    ingest's own keys (`ingest.max_past_s`, `MES_INGEST__MAX_PAST_S`, ...), its other keys
    ignored, so that one configuration serves both services."""

    model_config = ConfigDict(extra="ignore")


class ApiSettings(Settings):
    """Everything `mes api` reads: database and log (core.settings), api, tokens, and the
    ingest's message limits (for replays)."""

    api: ApiOptions = Field(default_factory=ApiOptions)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    ingest: IngestLimits = Field(default_factory=IngestLimits)
