"""The dashboard's pages: server-rendered from the same views as the API.

Everything works without JavaScript (sorting and filtering are links and GET forms);
``static/app.js`` only adds charts and submits filters as they change. Jinja2 escapes
every value (autoescape), so member-provided text can never become markup; chart data
travels in ``data-`` attributes as JSON, since the CSP forbids inline script.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from clanpulse.analytics.leaderboards import HEADLINE_METRICS
from clanpulse.web import api
from clanpulse.web import models as m
from clanpulse.web.security import SESSION_COOKIE, AdminGate
from clanpulse.web.views import MEMBER_SORTS, STATUSES, WINDOWS, NotFound, Views
from clanpulse.wom_metrics import BOSSES, SKILLS

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 100

environment = Environment(
    loader=PackageLoader("clanpulse.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=environment)

METRIC_LABELS: dict[str, str] = {
    "messages": "Messages",
    "xp": "XP gained",
    "ehp": "EHP gained",
    "ehb": "EHB gained",
    "boss_kills": "Boss kills",
    **{f"skill:{s}": f"{s.replace('_', ' ').title()} XP" for s in SKILLS},
    **{f"boss:{b}": f"{b.replace('_', ' ').title()} kills" for b in BOSSES},
}
COLUMN_LABELS: dict[str, str] = {
    "name": "Member",
    "role": "Role",
    "joined_at": "Joined",
    "status": "Status",
    "messages": "Messages",
    "xp_gained": "XP",
    "ehp_gained": "EHP",
    "ehb_gained": "EHB",
    "boss_kills_gained": "Kills",
    "last_seen_at": "Last seen",
}


class PageProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _views(request: Request) -> Views:
    found: Views = request.app.state.views
    return found


def _gate(request: Request) -> AdminGate:
    found: AdminGate = request.app.state.gate
    return found


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page, with what every page needs: the zone, the admin session, the CSRF token."""
    gate = _gate(request)
    nonce = gate.session_nonce(request.cookies.get(SESSION_COOKIE))
    zone = request.app.state.settings.zone

    def local(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return "" if moment is None else moment.astimezone(zone).strftime(fmt)

    base = {
        "zone": request.app.state.settings.timezone,
        "local": local,
        "admin_enabled": gate.enabled,
        "admin": nonce is not None,
        "csrf": gate.csrf_token(nonce) if nonce is not None else "",
        "notice": _notice(request),
        "path": request.url.path,
    }
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status)


def problem_page(request: Request, exc: PageProblem) -> HTMLResponse:
    return render(request, "problem.html", status=exc.status, message=str(exc), code=exc.status)


def _notice_signature(request: Request, text: str) -> str:
    key: bytes = request.app.state.notice_key
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def with_notice(request: Request, path: str, text: str) -> str:
    """``path`` showing ``text`` once: signed, so no one else's link can put words there."""
    return path + "?" + urlencode({"notice": text, "sig": _notice_signature(request, text)})


def _notice(request: Request) -> str | None:
    text = request.query_params.get("notice")
    given = request.query_params.get("sig", "")
    if text and hmac.compare_digest(given.encode(), _notice_signature(request, text).encode()):
        return text
    return None


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}" if digits or isinstance(value, float) else f"{value:,}"


environment.filters["number"] = number


def day_chart(
    days: list[m.DayOut], series: Literal["messages", "xp_gained"], label: str
) -> dict[str, Any]:
    return {
        "type": "bar",
        "label": label,
        "labels": [d.day.isoformat() for d in days],
        "values": [getattr(d, series) for d in days],
    }


WindowQ = Annotated[m.Window, Query()]


@router.get("/", response_class=HTMLResponse)
async def overview_page(request: Request, window: WindowQ = "30d") -> HTMLResponse:
    views = _views(request)
    overview = await views.overview(None, window)
    activity = await views.activity(None, window)
    health = await views.health()
    return render(
        request,
        "overview.html",
        nav="overview",
        window=window,
        windows=WINDOWS,
        overview=overview,
        health=health,
        messages_chart=day_chart(activity.days, "messages", "Messages per day"),
        xp_chart=day_chart(activity.days, "xp_gained", "XP gained per day"),
    )


@router.get("/members", response_class=HTMLResponse)
async def members_page(
    request: Request,
    window: WindowQ = "30d",
    status: Annotated[str | None, Query(max_length=16)] = None,
    role: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=64)] = None,
    sort: Annotated[str, Query(max_length=32)] = "messages",
    order: Literal["asc", "desc"] = "desc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    views = _views(request)
    # a form sends empty fields for "any"
    chosen_status = status if status in STATUSES else None
    chosen_role = role or None
    if sort not in MEMBER_SORTS:
        sort = "messages"
    found = await views.members(
        None,
        window,
        chosen_status,
        chosen_role,
        q or None,
        sort,
        order,
        (page - 1) * PAGE_SIZE,
        PAGE_SIZE,
    )
    report = await views.report(None)
    roles = sorted({r.role for r in report.rows if r.role}, key=str.casefold)
    current = {
        "window": window,
        "status": chosen_status or "",
        "role": chosen_role or "",
        "q": q or "",
    }

    def sort_link(column: str) -> str:
        flipped = "asc" if sort == column and order == "desc" else "desc"
        if sort != column and column in ("name", "role", "status"):
            flipped = "asc"
        return "?" + urlencode({**current, "sort": column, "order": flipped})

    def page_link(number: int) -> str:
        return "?" + urlencode({**current, "sort": sort, "order": order, "page": number})

    pages_total = max(1, -(-found.total // PAGE_SIZE))
    return render(
        request,
        "members.html",
        nav="members",
        window=window,
        windows=WINDOWS,
        result=found,
        statuses=STATUSES,
        roles=roles,
        current=current,
        sort=sort,
        order=order,
        columns=COLUMN_LABELS,
        sort_link=sort_link,
        page=page,
        pages_total=pages_total,
        page_link=page_link,
    )


@router.get("/members/{member_id}", response_class=HTMLResponse)
async def member_page(
    request: Request, member_id: Annotated[int, Path(ge=1, le=2**53)], window: WindowQ = "30d"
) -> HTMLResponse:
    views = _views(request)
    try:
        found = await views.member(member_id, None, window)
    except NotFound:
        raise PageProblem(404, f"There is no member #{member_id}.") from None
    return render(
        request,
        "member.html",
        nav="members",
        window=window,
        windows=WINDOWS,
        member=found,
        messages_chart=day_chart(found.days, "messages", "Messages per day"),
        xp_chart=day_chart(found.days, "xp_gained", "XP gained per day"),
    )


@router.get("/leaderboards", response_class=HTMLResponse)
async def leaderboards_page(
    request: Request,
    window: WindowQ = "30d",
    metric: Annotated[str, Query(max_length=64)] = "messages",
    limit: Annotated[int, Query(ge=1, le=500)] = 25,
) -> HTMLResponse:
    views = _views(request)
    if metric not in METRIC_LABELS:
        raise PageProblem(404, "There is no such leaderboard.")
    board = await views.leaderboard(None, metric, window, limit)
    return render(
        request,
        "leaderboards.html",
        nav="leaderboards",
        window=window,
        windows=WINDOWS,
        board=board,
        metric=metric,
        metric_label=METRIC_LABELS[metric],
        headline=[(k, METRIC_LABELS[k]) for k in HEADLINE_METRICS],
        skills=[(f"skill:{s}", METRIC_LABELS[f"skill:{s}"]) for s in SKILLS],
        bosses=[(f"boss:{b}", METRIC_LABELS[f"boss:{b}"]) for b in BOSSES],
        limit=limit,
    )


@router.get("/inactive", response_class=HTMLResponse)
async def inactive_page(request: Request) -> HTMLResponse:
    views = _views(request)
    return render(request, "inactive.html", nav="inactive", result=await views.inactive(None))


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request) -> HTMLResponse:
    return render(request, "jobs.html", nav="jobs", jobs=await _views(request).jobs())


# -- admin -------------------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> HTMLResponse:
    return render(request, "admin.html", nav="admin")


@router.post("/admin/login")
async def admin_login(request: Request, token: Annotated[str, Form(max_length=512)]) -> Response:
    gate = _gate(request)
    if not gate.enabled:
        raise PageProblem(403, "This dashboard is read-only (no admin token is configured).")
    if not gate.token_ok(token):
        raise PageProblem(403, "That is not the admin token.")
    response = RedirectResponse(with_notice(request, "/admin", "signed in"), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        gate.new_session(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
    return response


@router.post("/admin/logout")
async def admin_logout(request: Request, csrf: Annotated[str, Form(max_length=128)]) -> Response:
    _check(request, csrf)
    response = RedirectResponse(with_notice(request, "/", "signed out"), status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _check(request: Request, csrf: str) -> None:
    gate = _gate(request)
    if not gate.enabled:
        raise PageProblem(403, "This dashboard is read-only (no admin token is configured).")
    cookie = request.cookies.get(SESSION_COOKIE)
    if gate.session_nonce(cookie) is None:
        raise PageProblem(403, "Sign in as admin first.")
    if not gate.csrf_ok(cookie, csrf):
        raise PageProblem(403, "The form expired or did not come from this dashboard.")


async def _act(
    request: Request, csrf: str, back: str, action: Callable[[], Awaitable[str]]
) -> Response:
    _check(request, csrf)
    try:
        notice = await action()
    except HTTPException as exc:
        raise PageProblem(exc.status_code, str(exc.detail)) from None
    return RedirectResponse(with_notice(request, back, notice), status_code=303)


@router.post("/admin/jobs/{name}/run")
async def admin_run_page(
    request: Request,
    name: Annotated[str, Path(max_length=64)],
    csrf: Annotated[str, Form(max_length=128)],
) -> Response:
    return await _act(request, csrf, "/jobs", lambda: api.run_job(request, name))


@router.post("/admin/members/{member_id}/opt-out")
async def admin_opt_out_page(
    request: Request,
    member_id: Annotated[int, Path(ge=1, le=2**53)],
    csrf: Annotated[str, Form(max_length=128)],
) -> Response:
    return await _act(request, csrf, "/members", lambda: api.opt_out(request, member_id, True))


@router.post("/admin/members/{member_id}/link")
async def admin_link_page(
    request: Request,
    member_id: Annotated[int, Path(ge=1, le=2**53)],
    csrf: Annotated[str, Form(max_length=128)],
    account: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    return await _act(
        request, csrf, f"/members/{member_id}", lambda: api.link(request, member_id, account)
    )
