"""The dashboard's ASGI application: the JSON API, the pages and their static files."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from importlib.resources import files
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from clanpulse import __version__
from clanpulse.settings import Settings
from clanpulse.store.database import Database
from clanpulse.store.schema import utcnow
from clanpulse.web import api, pages
from clanpulse.web.security import AdminGate, SecurityHeaders
from clanpulse.web.views import Views

STATIC = files("clanpulse.web") / "static"


class JobRunner(Protocol):
    def run_now(self, name: str) -> str | None: ...


def create_app(
    db: Database,
    settings: Settings,
    runner: JobRunner,
    *,
    now: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The app over an open database; ``runner`` starts jobs on an admin's request."""
    app = FastAPI(
        title="clanpulse",
        version=__version__,
        description="Chat and game activity of a gaming community: the dashboard's data.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI loads from a CDN with inline script: not here
        redoc_url=None,
    )
    app.state.views = Views(db, settings, now)
    app.state.gate = AdminGate(settings)
    app.state.runner = runner
    app.state.settings = settings
    app.state.notice_key = secrets.token_bytes(32)  # signs the notices pages show
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(pages.PageProblem)
    async def page_problem(request: Request, exc: pages.PageProblem) -> object:
        return pages.problem_page(request, exc)

    return app
