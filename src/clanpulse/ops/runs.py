"""Job runs: every scheduled or hand-started job leaves one ``job_run`` row.

A run is recorded as ``running`` when it starts and gets its outcome when it ends:
``ok``, ``failed`` (with the error), or ``interrupted`` (the process was asked to stop).
A ``running`` row whose process died is found by the next start of ``clanpulse run``
and marked ``interrupted``, so the history never claims a job is still going.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.store.database import Database, ShutdownRequested
from clanpulse.store.schema import job_run, utcnow

log = logging.getLogger("clanpulse.ops")

RUNNING, OK, FAILED, INTERRUPTED = "running", "ok", "failed", "interrupted"
# an error kept in the history is cut to this length (a stack of channel errors can be long)
ERROR_CHARS = 2000


@dataclass
class RunHandle:
    """What a running job reports back: items handled, and a failure of part of its work.

    A job that ran to its end but failed in part (a channel, a player) sets ``failure``:
    the run is recorded as failed, and the watchdog counts it.
    """

    id: int
    items: int = 0
    failure: str | None = None


Clock = Callable[[], datetime]


@asynccontextmanager
async def recorded_run(db: Database, job: str, clock: Clock = utcnow) -> AsyncIterator[RunHandle]:
    """Record one run of ``job`` around the block; the outcome comes from how it ends.

    ``ShutdownRequested`` and cancellation end the run as ``interrupted``, any other
    exception as ``failed``; the exception still propagates to the caller.
    """
    async with db.write(bookkeeping=True) as conn:
        run_id = (
            await conn.execute(
                insert(job_run)
                .values(job=job, started_at=clock(), status=RUNNING, items=0)
                .returning(job_run.c.id)
            )
        ).scalar_one()
    handle = RunHandle(run_id)
    status, error = OK, None
    try:
        yield handle
        if handle.failure is not None:
            status, error = FAILED, handle.failure
    except (ShutdownRequested, KeyboardInterrupt, asyncio.CancelledError):
        status, error = INTERRUPTED, "stopped before the end (resumes with the next run)"
        raise
    except Exception as exc:
        status, error = FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        # shielded: a cancelled run still gets its outcome written
        await asyncio.shield(_finish(db, run_id, status, handle.items, error, clock()))


async def _finish(
    db: Database, run_id: int, status: str, items: int, error: str | None, at: datetime
) -> None:
    async with db.write(bookkeeping=True) as conn:
        await conn.execute(
            update(job_run)
            .where(job_run.c.id == run_id)
            .values(
                status=status,
                items=items,
                error=error[:ERROR_CHARS] if error else None,
                finished_at=at,
            )
        )
    log.info("job run %s: %s (%s items)%s", run_id, status, items, f": {error}" if error else "")


async def close_abandoned_runs(db: Database) -> int:
    """Mark runs left ``running`` by a process that died as ``interrupted``."""
    async with db.write(bookkeeping=True) as conn:
        result = await conn.execute(
            update(job_run)
            .where(job_run.c.status == RUNNING)
            .values(status=INTERRUPTED, error="the process ended during the run")
        )
        return int(result.rowcount or 0)


@dataclass(frozen=True)
class JobHistory:
    """What the status page and the watchdog need to know about one job."""

    job: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None
    last_items: int
    last_error: str | None
    last_ok_at: datetime | None  # when the latest successful run finished
    failures_in_a_row: int
    runs: int


async def job_history(conn: AsyncConnection, job: str) -> JobHistory:
    """The latest run of ``job``, its latest success and its current failure streak."""
    last = (
        await conn.execute(
            select(job_run).where(job_run.c.job == job).order_by(job_run.c.id.desc()).limit(1)
        )
    ).first()
    last_ok_id, last_ok_at = (
        await conn.execute(
            select(job_run.c.id, job_run.c.finished_at)
            .where(job_run.c.job == job, job_run.c.status == OK)
            .order_by(job_run.c.id.desc())
            .limit(1)
        )
    ).first() or (None, None)
    # failed runs since the latest success (interrupted runs neither break nor extend it)
    streak_filter = [job_run.c.job == job, job_run.c.status == FAILED]
    if last_ok_id is not None:
        streak_filter.append(job_run.c.id > last_ok_id)
    failures = (
        await conn.execute(select(func.count()).select_from(job_run).where(and_(*streak_filter)))
    ).scalar_one()
    runs = (
        await conn.execute(select(func.count()).select_from(job_run).where(job_run.c.job == job))
    ).scalar_one()
    return JobHistory(
        job=job,
        last_started_at=last.started_at if last else None,
        last_finished_at=last.finished_at if last else None,
        last_status=last.status if last else None,
        last_items=last.items if last else 0,
        last_error=last.error if last else None,
        last_ok_at=last_ok_at,
        failures_in_a_row=int(failures),
        runs=int(runs),
    )


async def recent_runs(conn: AsyncConnection, limit: int = 50) -> list[dict[str, object]]:
    """The newest runs of every job, newest first."""
    rows = await conn.execute(select(job_run).order_by(job_run.c.id.desc()).limit(limit))
    return [dict(row._mapping) for row in rows]


async def forget_old_history(db: Database, before: datetime) -> int:
    """Delete finished job runs and closed incidents from before ``before``.

    The watchdog alone records some 50 000 runs a year: history is kept for reading back
    (``clanpulse status``, the dashboard), not forever.
    """
    from sqlalchemy import delete

    from clanpulse.store.schema import alert

    async with db.write() as conn:
        runs = await conn.execute(
            delete(job_run).where(job_run.c.started_at < before, job_run.c.status != RUNNING)
        )
        alerts = await conn.execute(
            delete(alert).where(alert.c.closed_at.is_not(None), alert.c.closed_at < before)
        )
    return int(runs.rowcount or 0) + int(alerts.rowcount or 0)
