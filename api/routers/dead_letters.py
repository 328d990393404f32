"""Dead letters for administrators: list the organization's, and replay chosen ones with the
ingest's own checks and writer (core.intake.replay, as `mes ingest dead-letters replay`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api import roles
from api.deps import PageDep, SessionDep, requires
from api.repositories import dead_letters
from api.routers import PREFIX
from api.schemas.common import PageOf, page_response
from api.schemas.dead_letters import DeadLetterOut, ReplayIn, ReplayOut
from core.intake.replay import replay
from core.wire import DeadLetterReason

router = APIRouter(prefix=PREFIX, tags=["Dead letters"])

_STATES = {"waiting": False, "replayed": True, "all": None}


@router.get("/dead-letters", response_model=PageOf[DeadLetterOut],
            **requires(*roles.ADMINS))
def list_dead_letters(session: SessionDep, page: PageDep, reason: DeadLetterReason | None = None,
                      state: Literal["waiting", "replayed", "all"] = "waiting") -> Response:
    """Your organization's dead letters (a plant administrator: its plant's and the
    organization-wide ones), newest first. Letters no organization can be told from are the
    operator's (`mes ingest dead-letters`)."""
    items, cursor = dead_letters.list_letters(session, page=page, reason=reason,
                                              replayed=_STATES[state])
    return page_response(DeadLetterOut, items, cursor)


@router.post("/dead-letters/replay", response_model=ReplayOut, **requires(*roles.ADMINS))
def replay_dead_letters(request: Request, session: SessionDep, body: ReplayIn) -> ReplayOut:
    """Run the named waiting letters through the ingest's checks and writer again (after, say,
    registering the machine they named); those written are marked replayed. An id that is not
    a waiting letter of yours is reported as such, never revealed."""
    settings = request.app.state.settings
    letters = dead_letters.waiting(session, body.ids)
    results = {i: (ok, what) for i, ok, what in replay(
        settings.database.application_url(), settings.ingest, letters)} if letters else {}
    dead_letters.mark_replayed(session, [i for i, (ok, _) in results.items() if ok])
    outcomes = [{"id": i, "replayed": results[i][0], "detail": results[i][1]} if i in results
                else {"id": i, "replayed": False, "detail": "no waiting dead letter of yours"}
                for i in dict.fromkeys(body.ids)]
    return ReplayOut.model_validate({"replayed": sum(o["replayed"] for o in outcomes),
                                     "outcomes": outcomes})
