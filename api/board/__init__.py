"""The maintenance board: server-rendered pages over the API's repositories, live from the
stream (api/stream.py), signed in with a user's API token held in an HttpOnly cookie.

No build step: Jinja templates, one stylesheet and one small script (EventSource and a clock)
under static/, served by `mes api` itself at /board.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.board import actions, pages
from api.board.auth import SignIn


def install(app: FastAPI) -> None:
    """Serve the board's pages, writes and static files; send signed-out visitors to login."""
    app.mount("/board/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="board-static")
    app.include_router(pages.router)
    app.include_router(actions.router)

    @app.exception_handler(SignIn)
    def sign_in(request: Request, exc: SignIn) -> RedirectResponse:
        return RedirectResponse("/board/login", status_code=303)
