"""The maintenance board: server-rendered pages over the API's repositories, live from the
stream (api/stream.py), signed in with a user's API token held in an HttpOnly cookie.

No build step: Jinja templates, one stylesheet and one small script (EventSource and a clock)
under static/, served by `mes api` itself at /board.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from api.board import actions, pages
from api.board.auth import SignIn
from api.board.render import page
from api.problems import ApiError


def install(app: FastAPI) -> None:
    """Serve the board's pages, writes and static files; send signed-out visitors to login."""
    app.mount("/board/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="board-static")
    app.include_router(pages.router)
    app.include_router(actions.router)

    @app.exception_handler(SignIn)
    def sign_in(request: Request, exc: SignIn) -> RedirectResponse:
        return RedirectResponse("/board/login", status_code=303)

    # A board page that is not there (another plant's machine, a mistyped address) is a page
    # saying so, not the API's problem document; everything else keeps the API's handlers.
    for error, status in ((ApiError, "status"), (HTTPException, "status_code"),
                          (RequestValidationError, None)):
        _page_for_board(app, error, status)


def _page_for_board(app: FastAPI, error: type[Exception], status: str | None) -> None:
    api_handler = app.exception_handlers[error]

    async def handler(request: Request, exc: Exception) -> Response:
        if request.method != "GET" or not request.url.path.startswith("/board"):
            return await api_handler(request, exc)
        code = getattr(exc, status, 404) if status else 404
        return page(request, "error.html", None, status_code=code, code=code,
                    detail=getattr(exc, "detail", None) if code != 404 else None)

    app.add_exception_handler(error, handler)
