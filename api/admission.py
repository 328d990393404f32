"""At most as many requests at work as the database pool has connections.

Routes and their dependencies run on a thread pool larger than the connection pool. Under a
burst, threads that wait for a connection can then starve the requests that hold one of the
threads they need to finish (a unit of work commits on a thread of its own), until the pool's
timeout fails them all: found by `mes bench api` at 50 clients. Admitting at most `slots`
requests at once (in the event loop, first come first served) means a request's connection is
always free when it asks (it holds at most one at a time: the token lookup's, then its unit of
work's). A request leaves when its response starts: a live stream holds no slot while open.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Admission:
    """ASGI middleware admitting at most `slots` HTTP requests at once."""

    def __init__(self, app: ASGIApp, slots: int) -> None:
        self.app = app
        self.slots = asyncio.Semaphore(slots)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.slots.acquire()
        held = True

        def leave() -> None:
            nonlocal held
            if held:
                held = False
                self.slots.release()

        async def send_and_leave(message: Message) -> None:
            if message["type"] == "http.response.start":
                leave()
            await send(message)

        try:
            await self.app(scope, receive, send_and_leave)
        finally:
            leave()
