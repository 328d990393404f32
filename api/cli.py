"""`mes api`: serve the API with uvicorn until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse

from core import logging as mes_logging
from core.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add `mes api` to the `mes` parser."""
    p = sub.add_parser(
        "api", help="serve the HTTP API (OpenAPI at /docs)",
        description="Serve the MES API. Needs database.url (or app_url) and tokens.secret "
        "(MES_TOKENS__SECRET). The options override api.host and api.port.")
    p.add_argument("--host", help="listen address (default: api.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: api.port, 8000)")
    p.set_defaults(func=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings

    settings = load_settings(args.config, ApiSettings)
    mes_logging.configure(settings.log.level, settings.log.format)
    app = create_app(settings)
    uvicorn.run(app, host=args.host or settings.api.host, port=args.port or settings.api.port,
                log_config=None, access_log=False, server_header=False,
                # Open live streams never end by themselves: without a bound, SIGTERM would wait
                # for every board on a wall screen to go away.
                timeout_graceful_shutdown=5)
    return 0
