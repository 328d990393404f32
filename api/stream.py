"""The live stream: state changes, stops, stop reasons and PM task changes as server-sent
events, each subscriber seeing only its own tenant's.

The source is PostgreSQL: sql/0013 announces every committed row of those kinds on the channel
`mes_stream` with its organization and plant. One `Hub` per API process holds one connection
that LISTENs (so clients never poll the database) and hands each notification to the
subscribers whose scope admits it, by the tenant rule of sql/0002: the row's organization is
the subscriber's, and the subscriber is organization-wide, or the row is organization-wide, or
it is the subscriber's plant. A subscriber may narrow itself to one plant.

Nothing is dropped silently. A subscriber that falls a whole queue behind gets a `resync`
event and its stream ends (the client reconnects and reloads); when the LISTEN connection is
lost, every subscriber gets `resync` once it is back, since notifications in the gap are gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import CurrentUser, SessionDep
from api.repositories.base import get_or_404
from api.routers import PREFIX
from core.backoff import Backoff
from core.models import Plant
from core.tokens import Caller

log = logging.getLogger(__name__)

CHANNEL = "mes_stream"
QUEUE_SIZE = 1000
RESYNC = {"kind": "resync"}


@dataclass(eq=False)
class Subscriber:
    """One open stream: its scope and its queue of events still to send."""

    organization_id: uuid.UUID
    plant_id: uuid.UUID | None  # the caller's plant scope, or the plant asked for
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def admits(self, org: str, plant: str | None) -> bool:
        """The tenant rule of sql/0002 applied to a notification's organization and plant."""
        return (org == str(self.organization_id)
                and (self.plant_id is None or plant is None or plant == str(self.plant_id)))

    def offer(self, event: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # The client cannot keep up: end its stream with resync rather than skip events.
            self.overflowed = True
            self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)


class Hub:
    """The process's one LISTEN connection and its subscribers."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._subscribers: set[Subscriber] = set()
        self.listening = asyncio.Event()

    def subscribe(self, caller: Caller, plant_id: uuid.UUID | None) -> Subscriber:
        sub = Subscriber(caller.organization_id, caller.plant_id or plant_id)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def dispatch(self, payload: str) -> None:
        """Hand one notification to every subscriber whose scope admits it."""
        note = json.loads(payload)
        event = {"kind": note["kind"], "plant": note["plant"], **note["row"]}
        for sub in list(self._subscribers):
            if sub.admits(note["org"], note["plant"]):
                sub.offer(event)

    async def run(self) -> None:
        """LISTEN until cancelled; reconnect with backoff, telling subscribers to resync."""
        backoff = Backoff(0.5, 15)
        lost = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    backoff.reset()
                    self.listening.set()
                    if lost:
                        for sub in list(self._subscribers):
                            sub.offer(RESYNC)
                    async for note in conn.notifies():
                        self.dispatch(note.payload)
            except psycopg.OperationalError as exc:
                self.listening.clear()
                lost = True
                delay = backoff.delay()
                log.warning("stream: database connection lost (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)


def sse(event: dict[str, Any]) -> str:
    """One server-sent event named by its kind, its data the JSON of the rest."""
    data = {k: v for k, v in event.items() if k != "kind"}
    return f"event: {event['kind']}\ndata: {json.dumps(data)}\n\n"


async def events(hub: Hub, caller: Caller, plant_id: uuid.UUID | None,
                 keepalive_s: float) -> AsyncIterator[str]:
    """The text of one client's stream: events in its scope, a comment when idle (proxies
    close silent connections), ending after a resync caused by overflow."""
    sub = hub.subscribe(caller, plant_id)
    try:
        yield "retry: 2000\n\n"
        while True:
            try:
                event = await asyncio.wait_for(sub.queue.get(), keepalive_s)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            yield sse(event)
            if sub.overflowed and event is RESYNC:
                return
    finally:
        hub.unsubscribe(sub)


def stream_response(request: Request, caller: Caller,
                    plant_id: uuid.UUID | None) -> StreamingResponse:
    """The stream as an HTTP response (the API's route and the board's share it)."""
    state = request.app.state
    return StreamingResponse(
        events(state.hub, caller, plant_id, state.settings.api.stream_keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


router = APIRouter(prefix=PREFIX, tags=["Machines"])


@router.get("/stream", response_class=StreamingResponse, responses={200: {
    "content": {"text/event-stream": {}},
    "description": "server-sent events: `state`, `downtime`, `reason`, `task`, `resync`"}})
def stream(request: Request, caller: CurrentUser, session: SessionDep,
           plant_id: Annotated[uuid.UUID | None, Query(
               description="only this plant (and organization-wide rows)")] = None,
           ) -> StreamingResponse:
    """Live changes in your scope as they commit: `state` (a machine's new state), `downtime`
    (a stop started, changed or ended), `reason` (a person set a stop's reason), `task` (a PM
    task raised or changed). `resync`: events may have been missed, read the current state
    again."""
    if plant_id is not None:
        get_or_404(session, Plant, plant_id, what="plant")
    return stream_response(request, caller, plant_id)
