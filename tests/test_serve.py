"""`clanpulse run` serves the dashboard beside its schedule; jobs can be started by hand."""

from __future__ import annotations

import asyncio
import logging
import re

import httpx2 as httpx
import pytest
from sqlalchemy import select

from clanpulse.ops.clock import Clock
from clanpulse.ops.scheduler import Service, run_service
from clanpulse.settings import load_settings
from clanpulse.store.database import Database
from clanpulse.store.schema import job_run

OFF = "off"


async def test_run_serves_the_dashboard_while_scheduling(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        database_url=db_url,
        web_port=0,
        schedule_watchdog="*/10 * * * *",
        schedule_backup=OFF,
        schedule_maintain=OFF,
    )
    stop = asyncio.Event()
    seen: dict[str, object] = {}

    async def look(_service: Service) -> None:
        logged = " ".join(r.getMessage() for r in caplog.records)
        address = re.search(r"dashboard at (http://127\.0\.0\.1:\d+)", logged)
        assert address, logged
        async with httpx.AsyncClient(base_url=address.group(1)) as client:
            health = (await client.get("/api/v1/health")).json()
            page = await client.get("/jobs")
        seen["jobs"] = {j["job"]: j for j in health["jobs"]}
        seen["page"] = page.status_code
        stop.set()

    with caplog.at_level(logging.INFO, logger="clanpulse"):
        await asyncio.wait_for(run_service(settings, stop=stop, on_started=look, web=True), 60)
    jobs = seen["jobs"]
    assert isinstance(jobs, dict)
    assert jobs["watchdog"]["next_run"] is not None  # the running schedule shows
    assert jobs["backup"]["disabled"] == "CLANPULSE_SCHEDULE_BACKUP is off"
    assert seen["page"] == 200


async def test_a_job_started_by_hand_runs_once_and_is_recorded(db: Database) -> None:
    settings = load_settings(database_url=db.url)
    service = Service(db, settings, Clock())
    assert service.run_now("no-such-job") == "no job called 'no-such-job'"
    assert service.run_now("harvest-discord") == "Discord is not configured"
    assert service.run_now("watchdog") is None
    assert service.run_now("watchdog") == "watchdog is running already"
    await asyncio.wait_for(asyncio.gather(*service.running.values()), 30)
    async with db.read() as conn:
        runs = (await conn.execute(select(job_run.c.job, job_run.c.status))).all()
    assert runs == [("watchdog", "ok")]
    await service.stop()
