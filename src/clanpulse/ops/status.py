"""What ``clanpulse status`` (and the dashboard's health) shows: each job's last run,
outcome and next run, and how fresh the data is. Read from the database alone, so it
works whether or not ``clanpulse run`` is running."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.ops.jobs import JOBS, why_disabled
from clanpulse.ops.runs import JobHistory, job_history
from clanpulse.ops.scheduler import next_fire
from clanpulse.settings import Settings
from clanpulse.store.schema import alert, message


@dataclass(frozen=True)
class JobStatus:
    name: str
    schedule: str
    disabled: str | None  # why it is not scheduled, or None
    history: JobHistory
    next_run: datetime | None


@dataclass(frozen=True)
class ServiceStatus:
    jobs: list[JobStatus]
    latest_message_at: datetime | None
    open_alerts: list[str]


async def service_status(conn: AsyncConnection, settings: Settings, now: datetime) -> ServiceStatus:
    jobs = []
    for spec in JOBS:
        expression = getattr(settings, spec.schedule_setting)
        disabled = why_disabled(spec, settings)
        jobs.append(
            JobStatus(
                name=spec.name,
                schedule=expression,
                disabled=disabled,
                history=await job_history(conn, spec.name),
                next_run=None if disabled else next_fire(expression, settings.zone, now),
            )
        )
    latest = (await conn.execute(select(func.max(message.c.sent_at)))).scalar()
    open_alerts = list(
        (
            await conn.execute(
                select(alert.c.message).where(alert.c.closed_at.is_(None)).order_by(alert.c.id)
            )
        ).scalars()
    )
    return ServiceStatus(jobs, latest, open_alerts)
