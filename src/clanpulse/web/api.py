"""The JSON API, ``/api/v1``: the views of ``web/views.py`` as JSON.

Read endpoints serve cached JSON bytes (computed once per data version and minute); the
admin endpoints need the admin token as a bearer token and drop the cache after a change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from clanpulse.analytics.leaderboards import METRICS
from clanpulse.identity import IdentityError, move_account, one_account, set_opted_out
from clanpulse.store.database import ShutdownRequested
from clanpulse.store.schema import member
from clanpulse.web import models as m
from clanpulse.web.views import MEMBER_SORTS, NotFound, Views

router = APIRouter(prefix="/api/v1")

MetricName = Literal[METRICS]  # type: ignore[valid-type]
SortColumn = Literal[MEMBER_SORTS]  # type: ignore[valid-type]
AsOf = Annotated[
    datetime | None,
    Query(description="The moment the figures are for (default: the start of this minute)"),
]
WindowQ = Annotated[m.Window, Query(description="The window the figures cover")]
JSON = "application/json"
PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"model": m.Problem},
    422: {"description": "Invalid parameters"},
}


def views(request: Request) -> Views:
    found: Views = request.app.state.views
    return found


ViewsDep = Annotated[Views, Depends(views)]


async def _json(
    views: Views,
    as_of: datetime | None,
    key: tuple[Any, ...],
    make: Callable[[datetime | None], Awaitable[BaseModel]],
) -> Response:
    """The model ``make`` gives for a moment, as JSON bytes: for an exact ``as_of``, kept
    while the data stay the same; for now (None), the latest, served stale while a newer
    one is computed (see ``ResultCache``)."""

    async def encoded(moment: datetime | None) -> bytes:
        model = await make(moment)
        return model.model_dump_json().encode()

    if as_of is not None:
        moment = views.as_of(as_of)
        body = await views.cache.get(("json", moment, *key), lambda: encoded(moment))
    else:
        body = await views.cache.latest(("json", *key), views.as_of(None), lambda: encoded(None))
    return Response(body, media_type=JSON)


@router.get("/health", response_model=m.Health, summary="Job health and data freshness")
async def health(views: ViewsDep) -> Response:
    """Also the liveness check: 200 while the database answers."""
    found = await views.health()
    return Response(found.model_dump_json().encode(), media_type=JSON)


@router.get("/jobs", response_model=m.Jobs, summary="Jobs, their schedules and recent runs")
async def jobs(views: ViewsDep) -> Response:
    found = await views.jobs()
    return Response(found.model_dump_json().encode(), media_type=JSON)


@router.get("/overview", response_model=m.Overview, summary="Headline numbers for a window")
async def overview(views: ViewsDep, window: WindowQ = "30d", as_of: AsOf = None) -> Response:
    return await _json(views, as_of, ("overview", window), lambda t: views.overview(t, window))


@router.get("/members", response_model=m.MemberPage, summary="Current members, clan report rows")
async def members(
    views: ViewsDep,
    window: WindowQ = "30d",
    status: m.Status | None = None,
    role: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=64, description="Part of the name")] = None,
    sort: SortColumn = "messages",
    order: Literal["asc", "desc"] = "desc",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    as_of: AsOf = None,
) -> Response:
    key = ("members", window, status, role, q, sort, order, offset, limit)
    return await _json(
        views,
        as_of,
        key,
        lambda t: views.members(t, window, status, role, q, sort, order, offset, limit),
    )


@router.get(
    "/members/{member_id}",
    response_model=m.MemberDetail,
    responses=PROBLEMS,
    summary="One member: accounts, renames, messages and XP per day",
)
async def member_detail(
    views: ViewsDep,
    member_id: Annotated[int, Path(ge=1, le=2**53)],
    window: WindowQ = "30d",
    as_of: AsOf = None,
) -> Response:
    try:
        return await _json(
            views,
            as_of,
            ("member", member_id, window),
            lambda t: views.member(member_id, t, window),
        )
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/leaderboard", response_model=m.Leaderboard, summary="Members ranked by one metric")
async def leaderboard(
    views: ViewsDep,
    metric: MetricName = "messages",
    window: WindowQ = "30d",
    limit: Annotated[int, Query(ge=1, le=500)] = 10,
    as_of: AsOf = None,
) -> Response:
    return await _json(
        views,
        as_of,
        ("leaderboard", metric, window, limit),
        lambda t: views.leaderboard(t, metric, window, limit),
    )


@router.get("/activity", response_model=m.Activity, summary="The clan's messages and XP per day")
async def activity(views: ViewsDep, window: WindowQ = "30d", as_of: AsOf = None) -> Response:
    return await _json(views, as_of, ("activity", window), lambda t: views.activity(t, window))


@router.get("/roster", response_model=m.Roster, summary="Who joined, left and was renamed")
async def roster(views: ViewsDep, window: WindowQ = "30d", as_of: AsOf = None) -> Response:
    return await _json(views, as_of, ("roster", window), lambda t: views.roster(t, window))


@router.get("/inactive", response_model=m.Inactive, summary="The purge list, with reasons")
async def inactive(views: ViewsDep, as_of: AsOf = None) -> Response:
    return await _json(views, as_of, ("inactive",), views.inactive)


# -- admin -------------------------------------------------------------------------------

ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": m.Problem, "description": "The body could not be read"},
    401: {"model": m.Problem},
    403: {"model": m.Problem},
    404: {"model": m.Problem},
    409: {"model": m.Problem},
}


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    gate = request.app.state.gate
    if not gate.enabled:
        raise HTTPException(403, "read-only: set CLANPULSE_ADMIN_TOKEN to allow admin actions")
    if not gate.bearer_ok(authorization):
        raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})


Admin = Depends(require_admin)


class OptOut(BaseModel):
    opted_out: bool = True


class Link(BaseModel):
    account: str = Field(
        min_length=1, max_length=200, description="discord:<id or name> or osrs:<name>"
    )


async def run_job(request: Request, name: str) -> str:
    """Start a job now; the message to show. Shared with the pages' form."""
    runner = request.app.state.runner
    refusal = runner.run_now(name)
    if refusal is not None:
        raise HTTPException(409, refusal)
    return f"{name} started"


async def opt_out(request: Request, member_id: int, opted_out: bool) -> str:
    views: Views = request.app.state.views
    try:
        async with views.db.write() as conn:
            found = await conn.execute(member.select().where(member.c.id == member_id))
            if found.first() is None:
                raise HTTPException(404, f"no member #{member_id}")
            await set_opted_out(conn, member_id, opted_out)
    except ShutdownRequested:
        raise HTTPException(409, "stopping") from None
    views.cache.forget()
    return f"member #{member_id} " + ("opted out" if opted_out else "opted back in")


async def link(request: Request, member_id: int, account_query: str) -> str:
    views: Views = request.app.state.views
    try:
        async with views.db.write() as conn:
            found = await conn.execute(
                member.select().where(member.c.id == member_id, member.c.opted_out.is_(False))
            )
            if found.first() is None:
                raise HTTPException(404, f"no member #{member_id}")
            moved = await one_account(conn, account_query)
            await move_account(conn, moved.account_id, member_id, locked=True)
    except IdentityError as exc:
        raise HTTPException(404, str(exc)) from None
    except ShutdownRequested:
        raise HTTPException(409, "stopping") from None
    views.cache.forget()
    return f"linked {moved.platform}:{moved.name} to member #{member_id}"


@router.post(
    "/admin/jobs/{name}/run",
    dependencies=[Admin],
    response_model=m.Done,
    status_code=202,
    responses=ADMIN_RESPONSES,
    summary="Run a job now",
)
async def admin_run(request: Request, name: Annotated[str, Path(max_length=64)]) -> m.Done:
    return m.Done(detail=await run_job(request, name))


@router.post(
    "/admin/members/{member_id}/opt-out",
    dependencies=[Admin],
    response_model=m.Done,
    responses=ADMIN_RESPONSES,
    summary="Opt a member out (or back in)",
)
async def admin_opt_out(
    request: Request, member_id: Annotated[int, Path(ge=1, le=2**53)], body: OptOut
) -> m.Done:
    return m.Done(detail=await opt_out(request, member_id, body.opted_out))


@router.post(
    "/admin/members/{member_id}/accounts",
    dependencies=[Admin],
    response_model=m.Done,
    responses=ADMIN_RESPONSES,
    summary="Link an account to a member",
)
async def admin_link(
    request: Request, member_id: Annotated[int, Path(ge=1, le=2**53)], body: Link
) -> m.Done:
    return m.Done(detail=await link(request, member_id, body.account))
