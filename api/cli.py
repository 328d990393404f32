"""`mes api`: serve the API with uvicorn until SIGTERM or SIGINT, in `api.workers` processes."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import TYPE_CHECKING

from core import logging as mes_logging
from core.settings import CONFIG_ENV, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

def register(sub: argparse._SubParsersAction) -> None:
    """Add `mes api` to the `mes` parser."""
    p = sub.add_parser(
        "api", help="serve the HTTP API (OpenAPI at /docs)",
        description="Serve the MES API. Needs database.url (or app_url) and tokens.secret "
        "(MES_TOKENS__SECRET). The options override api.host and api.port.")
    p.add_argument("--host", help="listen address (default: api.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: api.port, 8000)")
    p.set_defaults(func=cmd_api)


def default_workers() -> int:
    """`api.workers` when unset: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn calls this in each): the settings as `mes api`
    read them, from $MES_CONFIG and the environment the worker inherited."""
    from api.app import create_app
    from api.settings import ApiSettings

    settings = load_settings(None, ApiSettings)
    mes_logging.configure(settings.log.level, settings.log.format)
    return create_app(settings)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.observe import METRICS_DIR_ENV
    from api.settings import ApiSettings

    settings = load_settings(args.config, ApiSettings)
    mes_logging.configure(settings.log.level, settings.log.format)
    app = create_app(settings)  # checks the settings before anything listens
    workers = settings.api.workers or default_workers()
    options: dict = dict(
        host=args.host or settings.api.host, port=args.port or settings.api.port,
        log_config=None, access_log=False, server_header=False,
        # Open live streams never end by themselves: without a bound, SIGTERM would wait for
        # every board on a wall screen to go away.
        timeout_graceful_shutdown=5)
    if workers == 1:
        uvicorn.run(app, **options)
        return 0
    if args.config:
        os.environ[CONFIG_ENV] = str(args.config)
    with tempfile.TemporaryDirectory(prefix="mes-api-metrics-") as metrics_dir:
        os.environ[METRICS_DIR_ENV] = metrics_dir
        uvicorn.run("api.cli:worker_app", factory=True, workers=workers, **options)
    return 0
