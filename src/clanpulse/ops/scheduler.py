"""``clanpulse run``: one long-lived asyncio process that runs every job on its schedule.

APScheduler 3 fires the jobs (cron expressions in CLANPULSE_TIMEZONE, one instance of
a job at a time, missed fires coalesced). Its job store is in memory on purpose: what
ran and when is in our own ``job_run`` table, and that is also what decides, at start,
whether a run was missed while the process was down (made up once, within
CLANPULSE_MISFIRE_GRACE_HOURS).

Stopping (SIGTERM/SIGINT) closes the writer to new transactions, so every job ends at
its next batch boundary with everything before it committed; a job still waiting on
the network after :data:`STOP_GRACE` seconds is cancelled (it had nothing uncommitted).

Time goes through a :class:`Clock` so tests and the soak benchmark can run days of
schedule in minutes: a :class:`ScaledClock` maps real seconds to virtual hours, and
the cron triggers fire at the real moments matching their virtual times.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from clanpulse.ops.clock import Clock
from clanpulse.ops.jobs import JOBS, JobContext, JobSpec, why_disabled
from clanpulse.ops.runs import INTERRUPTED, close_abandoned_runs, recorded_run
from clanpulse.settings import Settings
from clanpulse.store.database import Database, ShutdownRequested, open_database
from clanpulse.store.schema import job_run

log = logging.getLogger("clanpulse.ops")

# seconds a stopping process waits for its jobs to reach a batch boundary
STOP_GRACE = 8.0


def cron(expression: str, zone: tzinfo) -> CronTrigger:
    return CronTrigger.from_crontab(expression, timezone=zone)


class ClockTrigger(BaseTrigger):  # type: ignore[misc]
    """A cron trigger read on a :class:`Clock`: fires at the real moment of each virtual fire."""

    def __init__(self, trigger: CronTrigger, clock: Clock) -> None:
        self.trigger = trigger
        self.clock = clock

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        virtual_now = self.clock.to_virtual(now)
        if previous_fire_time is not None:
            # strictly after the previous fire; a second of slack absorbs the rounding of
            # the real<->virtual conversion (cron resolution is a minute)
            after = self.clock.to_virtual(previous_fire_time) + timedelta(seconds=1)
            virtual_now = max(virtual_now, after)
        fire = self.trigger.get_next_fire_time(None, virtual_now)
        if fire is None:
            return None
        return self.clock.to_real(fire).astimezone(now.tzinfo)


def next_fire(expression: str, zone: tzinfo, after: datetime) -> datetime | None:
    """The first fire of a cron expression strictly after ``after`` (UTC)."""
    if expression == "off":
        return None
    fire = cron(expression, zone).get_next_fire_time(None, after + timedelta(seconds=1))
    return None if fire is None else fire.astimezone(UTC)


async def missed_fire(
    db: Database, spec: JobSpec, settings: Settings, now: datetime
) -> datetime | None:
    """The scheduled fire this job missed while no process ran it, if still worth making up.

    The reference is the job's last run that was not interrupted; the fire counts when
    it is in the past and no older than the misfire grace. A job that never ran misses
    nothing, but harvests run at once on a first start.
    """
    async with db.read() as conn:
        last = (
            await conn.execute(
                select(job_run.c.started_at)
                .where(job_run.c.job == spec.name, job_run.c.status != INTERRUPTED)
                .order_by(job_run.c.id.desc())
                .limit(1)
            )
        ).scalar()
    if last is None:
        return now if spec.run_on_first_start else None
    fire = next_fire(getattr(settings, spec.schedule_setting), settings.zone, last)
    grace = timedelta(hours=settings.misfire_grace_hours)
    if fire is None or fire > now or now - fire > grace:
        return None
    return fire


class Service:
    """The scheduler, its jobs and their running tasks, over one open database."""

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=settings.zone)
        self.running: dict[str, asyncio.Task[None]] = {}
        self.enabled: list[JobSpec] = []

    async def start(self) -> None:
        closed = await close_abandoned_runs(self.db)
        if closed:
            log.warning("%s job runs were left unfinished by a stopped process", closed)
        self.clock.anchor()
        grace = self.clock.seconds(self.settings.misfire_grace_hours * 3600)
        for spec in JOBS:
            reason = why_disabled(spec, self.settings)
            if reason is not None:
                log.info("job %s: not scheduled (%s)", spec.name, reason)
                continue
            self.enabled.append(spec)
            expression = getattr(self.settings, spec.schedule_setting)
            trigger = ClockTrigger(cron(expression, self.settings.zone), self.clock)
            job = self.scheduler.add_job(
                self._run,
                trigger,
                args=[spec],
                id=spec.name,
                name=spec.name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(grace)),
            )
            missed = await missed_fire(self.db, spec, self.settings, self.clock.now())
            if missed is not None:
                log.info("job %s: making up the run due %s", spec.name, missed.isoformat())
                job.modify(next_run_time=datetime.now(UTC))
        self.scheduler.start()

    async def _run(self, spec: JobSpec) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self.db.stopping:  # fired just as the service began to stop
            log.info("job %s: not started, stopping", spec.name)
            return
        if self.running.get(spec.name, task) is not task:
            log.info("job %s: running already (started by hand), skipping this run", spec.name)
            return
        self.running[spec.name] = task
        ctx = JobContext(self.db, self.settings, self.clock)
        try:
            async with recorded_run(self.db, spec.name, self.clock.now) as run:
                await spec.func(ctx, run)
        except (ShutdownRequested, asyncio.CancelledError):
            log.info("job %s: stopped at a batch boundary", spec.name)
        except Exception as exc:  # recorded as failed; the schedule goes on
            log.error("job %s failed: %s", spec.name, exc)
        finally:
            self.running.pop(spec.name, None)

    def run_now(self, name: str) -> str | None:
        """Start job ``name`` now, outside its schedule (the dashboard's "run now"); the
        reason it cannot start, or None. Works whether or not the scheduler runs."""
        spec = next((s for s in JOBS if s.name == name), None)
        if spec is None:
            return f"no job called {name!r}"
        if name in self.running:
            return f"{name} is running already"
        reason = why_disabled(spec, self.settings)
        if reason is not None and "is off" not in reason:
            return reason  # not configured: it would only fail
        if self.db.stopping:
            return "stopping"
        task = asyncio.create_task(self._run(spec), name=f"job {name}")
        self.running[name] = task  # before it starts: a second click must see it
        return None

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop firing, let running jobs reach a batch boundary, cancel what still waits."""
        self.db.stop_writes()
        # Paused, not shut down yet: APScheduler's shutdown cancels the jobs it started
        # there and then, mid-transaction; an SQLite connection cancelled mid-statement
        # keeps its write lock, and the next write (the job's own record) then waits 30 s.
        if self.scheduler.running:
            self.scheduler.pause()
        try:
            await self._wind_down(grace)
        finally:
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)

    async def _wind_down(self, grace: float) -> None:
        tasks = list(self.running.values())
        if not tasks:
            return
        log.info("stopping: waiting for %s", ", ".join(self.running))
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if not pending:
            return
        # What still runs waits on the network. Cancel it between transactions, never
        # inside one, for the reason above.
        async with self.db.exclusive():
            for task in pending:
                task.cancel()
        await asyncio.wait(pending, timeout=2)


class AlreadyRunning(Exception):
    """Another ``clanpulse run`` already serves this database."""


# PostgreSQL advisory lock key of ``clanpulse run`` (any constant unique to the project)
PG_RUN_LOCK = 0x636C_616E_7275_6E  # "clanrun"


@asynccontextmanager
async def only_instance(db: Database) -> AsyncIterator[None]:
    """Hold, for as long as the block runs, the right to be the one scheduler of ``db``.

    Two schedulers on one database would do every job twice: harmless to the data (every
    job is idempotent) but wasteful, and their watchdogs would race to announce the same
    incident. SQLite: an exclusive lock on a file beside the database; PostgreSQL: a
    session advisory lock on a connection kept open meanwhile. Both vanish with the
    process, however it ends.
    """
    busy = AlreadyRunning(f"another clanpulse run is already using {db.display_url}")
    if db.backend == "sqlite":
        path = Path(str(make_url(db.url).database) + ".run.lock")
        with path.open("a") as handle:  # noqa: ASYNC230 (a tiny local file, once)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise busy from None
            yield
        return
    async with db.writer.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        got = (await auto.execute(text(f"SELECT pg_try_advisory_lock({PG_RUN_LOCK})"))).scalar()
        if not got:
            raise busy
        try:
            yield
        finally:
            await auto.execute(text(f"SELECT pg_advisory_unlock({PG_RUN_LOCK})"))


async def run_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    on_started: Callable[[Service], Awaitable[Any]] | None = None,
    web: bool = False,
) -> None:
    """Run the scheduler (and with ``web`` the dashboard) until ``stop`` is set or the
    process gets SIGTERM/SIGINT."""
    clock = clock or Clock()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with open_database(settings.database_url) as db, only_instance(db):
            service = Service(db, settings, clock)
            async with AsyncExitStack() as web_server:
                if web:
                    from clanpulse.web.server import dashboard

                    address = await web_server.enter_async_context(dashboard(db, settings, service))
                    log.info("clanpulse run: dashboard at %s", address)
                await service.start()
                names = ", ".join(spec.name for spec in service.enabled) or "none"
                log.info("clanpulse run: scheduling %s on %s", names, db.display_url)
                if on_started is not None:
                    await on_started(service)
                await stop.wait()
                log.info("clanpulse run: stopping")
                # the jobs wind down while the dashboard closes, not one after the other
                stopping = asyncio.create_task(service.stop())
            await stopping
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
