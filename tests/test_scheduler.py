"""``clanpulse run``: the schedule on a compressed clock against the fake servers, making up
missed runs once, and stopping cleanly on SIGTERM without losing or doubling anything."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select

from clanpulse.cli import main
from clanpulse.demo.community import Community
from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer
from clanpulse.demo.fake_wom import FakeWomConfig, FakeWomServer
from clanpulse.demo.wom_data import WomGroup, generate_wom_group
from clanpulse.ops import scheduler
from clanpulse.ops.clock import ScaledClock
from clanpulse.ops.jobs import HARVEST_DISCORD, JOBS, REPORT, JobContext, JobSpec
from clanpulse.ops.scheduler import Service, missed_fire, run_service
from clanpulse.settings import Settings
from clanpulse.store.database import Database, open_database
from clanpulse.store.schema import harvest_cursor, job_run, message, snapshot
from tests.harvest_support import (
    env_for,
    readable_channels,
    settings_for,
    small_clan,
    source_ids,
    stored_ids,
)

WOM_SCALE = 0.002
OFF = "off"


@pytest.fixture(scope="module")
def clan() -> Community:
    return small_clan(members=16, days=4)


@pytest.fixture(scope="module")
def group() -> WomGroup:
    return generate_wom_group(seed=5, members=10, days=60, snapshot_every_hours=24)


@pytest.fixture
def discord(clan: Community) -> Iterator[FakeDiscordServer]:
    with FakeDiscordServer(clan, FakeDiscordConfig(time_scale=0.02)) as fake:
        yield fake


@pytest.fixture
def wom(group: WomGroup) -> Iterator[FakeWomServer]:
    with FakeWomServer(group, FakeWomConfig(time_scale=WOM_SCALE)) as fake:
        yield fake


def service_settings(
    discord: FakeDiscordServer, wom: FakeWomServer | None, url: str, **extra: Any
) -> Settings:
    values: dict[str, Any] = {"discord_webhook_url": discord.webhook_url()}
    if wom is not None:
        values.update(wom_api_url=wom.url, wom_group_id=wom.group_id)
    values.update(extra)
    return settings_for(discord, url, **values)


async def run_for(settings: Settings, clock: ScaledClock, seconds: float) -> None:
    """Run the service until ``seconds`` of real time passed."""
    await run_until(settings, clock, clock.now() + timedelta(seconds=seconds * clock.scale))


async def run_until(settings: Settings, clock: ScaledClock, until: datetime) -> None:
    """Run the service until its clock shows ``until`` (however slow the machine is), then
    stop it at a moment when no job is running."""
    stop = asyncio.Event()

    async def watch_clock(service: Service) -> None:
        await asyncio.sleep(max((until - clock.now()).total_seconds() / clock.scale, 0))
        service.scheduler.pause()  # no new run may start between this and the stop
        while service.running:  # noqa: ASYNC110 (polling the service's own state)
            await asyncio.sleep(0.01)
        stop.set()

    async def start_watching(service: Service) -> None:
        tasks.append(asyncio.create_task(watch_clock(service)))

    tasks: list[asyncio.Task[None]] = []
    await run_service(settings, clock=clock, stop=stop, on_started=start_watching)


async def runs_by_job(url: str) -> dict[str, list[Any]]:
    async with open_database(url) as db, db.read() as conn:
        rows = await conn.execute(select(job_run).order_by(job_run.c.id))
        by_job: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_job[row.job].append(row)
        return by_job


async def test_hours_of_compressed_schedule_leave_a_correct_history_and_exact_data(
    db_url: str,
    discord: FakeDiscordServer,
    wom: FakeWomServer,
    clan: Community,
    tmp_path: Path,
) -> None:
    # Monday 03:30 to 12:00 (UTC): the daily backup (04:00) and the weekly report (Monday
    # 09:00) fall inside; until 06:30 Discord refuses the bot token (rotated, then restored)
    settings = service_settings(discord, wom, db_url, backup_dir=str(tmp_path / "backups"))
    clock = ScaledClock(datetime(2026, 3, 30, 3, 30, tzinfo=UTC), scale=2400)
    token = discord.config.token
    discord.config.token = "rotated"

    async def restore_token() -> None:
        while clock.now() < datetime(2026, 3, 30, 6, 30, tzinfo=UTC):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        discord.config.token = token

    restoring = asyncio.create_task(restore_token())
    await run_until(settings, clock, datetime(2026, 3, 30, 12, 0, tzinfo=UTC))
    await restoring

    runs = await runs_by_job(db_url)
    assert set(runs) == {"harvest-discord", "harvest-wom", "backup", "report", "watchdog"}
    for job, history in runs.items():
        # never two runs of one job at a time, and every run ran to its end
        for earlier, later in itertools.pairwise(history):
            assert earlier.finished_at is not None and later.started_at >= earlier.finished_at, job
    for job in ("harvest-wom", "backup", "report", "watchdog"):
        assert all(r.status == "ok" for r in runs[job]), [(r.status, r.error) for r in runs[job]]
    # 8.5 hours of schedule: hourly harvests, a watchdog every 10 minutes (a run still going
    # when the next fire comes makes that fire skip, so a slow machine sees fewer)
    assert 4 <= len(runs["harvest-discord"]) <= 10
    assert 2 <= len(runs["harvest-wom"]) <= 10
    assert 10 <= len(runs["watchdog"]) <= 52

    # Discord failed while the token was refused, then the first good run fetched everything
    outcomes = [r.status for r in runs["harvest-discord"]]
    first_ok = outcomes.index("ok")
    assert first_ok >= 3 and set(outcomes[:first_ok]) == {"failed"}
    assert set(outcomes[first_ok:]) == {"ok"}
    assert "401" in (runs["harvest-discord"][0].error or "")
    assert runs["harvest-discord"][first_ok].items > 0
    assert all(r.items == 0 for r in runs["harvest-discord"][first_ok + 1 :])
    # ... which made exactly one alert and one recovery
    titles = [p.payload["embeds"][0]["title"].replace("\\", "") for p in discord.webhook_posts]
    alerts = [t for t in titles if "harvest-discord" in t]
    assert alerts == ["harvest-discord: failing", "Recovered: harvest-discord: failing"]

    # the weekly report went out once, at Monday 09:00
    (report,) = runs["report"]
    assert report.status == "ok", report
    assert datetime(2026, 3, 30, 9, 0, tzinfo=UTC) <= report.started_at
    assert report.started_at < datetime(2026, 3, 30, 10, 0, tzinfo=UTC)
    assert report.items == len(discord.webhook_posts) - len(alerts) >= 1
    # the daily backup ran once, at 04:00 (on PostgreSQL it is skipped: pg_dump's job)
    (backup,) = runs["backup"]
    assert backup.status == "ok"
    assert backup.started_at.hour == 4
    backups = list((tmp_path / "backups").glob("clanpulse-*.db"))
    assert len(backups) == (1 if db_url.startswith("sqlite") else 0)

    async with open_database(db_url) as db:
        assert await stored_ids(db) == source_ids(clan, readable_channels(clan))
        async with db.read() as conn:
            stored_snapshots = (
                await conn.execute(select(func.count()).select_from(snapshot))
            ).scalar_one()
    assert stored_snapshots > 0


async def test_a_report_missed_while_down_is_made_up_once(
    db_url: str, discord: FakeDiscordServer
) -> None:
    url = db_url
    settings = service_settings(
        discord,
        None,
        url,
        schedule_harvest_discord=OFF,
        schedule_watchdog=OFF,
        misfire_grace_hours=12,
    )
    async with open_database(url) as db, db.write() as conn:
        last_week = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
        await conn.execute(
            insert(job_run).values(
                job=REPORT, started_at=last_week, finished_at=last_week, status="ok", items=1
            )
        )
    # the machine was off on Monday 2026-03-23 at 09:00 and comes back at 15:00
    back = datetime(2026, 3, 23, 15, 0, tzinfo=UTC)
    await run_for(settings, ScaledClock(back, scale=60), seconds=2)
    first = await runs_by_job(url)
    assert [r.status for r in first[REPORT]] == ["ok", "ok"]
    posts = len(discord.webhook_posts)
    assert posts == first[REPORT][1].items >= 1

    # a restart a little later makes up nothing more
    await run_for(settings, ScaledClock(back + timedelta(minutes=10), scale=60), seconds=1.5)
    assert len((await runs_by_job(url))[REPORT]) == 2
    assert len(discord.webhook_posts) == posts


async def test_a_run_missed_longer_ago_than_the_grace_is_not_made_up(
    db: Database, discord: FakeDiscordServer
) -> None:
    settings = service_settings(discord, None, db.url, misfire_grace_hours=2)
    report = next(spec for spec in JOBS if spec.name == REPORT)
    async with db.write() as conn:
        ran = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
        await conn.execute(insert(job_run).values(job=REPORT, started_at=ran, status="ok"))
    assert await missed_fire(db, report, settings, datetime(2026, 3, 23, 10, 30, tzinfo=UTC)) == (
        datetime(2026, 3, 23, 9, 0, tzinfo=UTC)
    )
    assert (
        await missed_fire(db, report, settings, datetime(2026, 3, 23, 11, 30, tzinfo=UTC)) is None
    )
    # before the next fire nothing is missed
    assert await missed_fire(db, report, settings, datetime(2026, 3, 22, 9, 0, tzinfo=UTC)) is None


async def test_on_a_first_start_harvests_run_at_once_and_the_report_waits(
    db: Database, discord: FakeDiscordServer
) -> None:
    settings = service_settings(discord, None, db.url)
    now = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
    due = {spec.name: await missed_fire(db, spec, settings, now) for spec in JOBS}
    assert due[HARVEST_DISCORD] == now
    assert due[REPORT] is None


def test_sigterm_mid_harvest_stops_within_seconds_and_a_rerun_completes_exactly(
    db_url: str, clan: Community
) -> None:
    # slow requests, so the first harvest is surely still going when the signal comes
    config = FakeDiscordConfig(time_scale=0.02, latency=0.03)
    url = db_url
    with FakeDiscordServer(clan, config) as fake:
        env = {
            **os.environ,
            **env_for(fake, url),
            "CLANPULSE_SCHEDULE_WATCHDOG": OFF,
            "CLANPULSE_SCHEDULE_MAINTAIN": OFF,
            # `run` serves the dashboard too: on a free port, not the default 8080, which
            # another test (or anything else on the machine) may hold
            "CLANPULSE_WEB_PORT": "0",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "clanpulse.cli", "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert _wait_for_messages(url, proc), "the harvest never started writing"
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            _, err = proc.communicate(timeout=25)
            stopped_after = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert stopped_after < 10, err

        async def history() -> list[Any]:
            async with open_database(url) as db, db.read() as conn:
                return list(await conn.execute(select(job_run.c.job, job_run.c.status)))

        assert asyncio.run(history()) == [(HARVEST_DISCORD, "interrupted")]

        # the next run picks up where the stopped one ended: every message exactly once
        result = CliRunner().invoke(main, ["harvest", "discord"], env=env_for(fake, url))
        assert result.exit_code == 0, result.output

        async def stored() -> dict[int, set[int]]:
            async with open_database(url) as db:
                return await stored_ids(db)

        assert asyncio.run(stored()) == source_ids(clan, readable_channels(clan))
        assert asyncio.run(history())[-1] == (HARVEST_DISCORD, "ok")


def _wait_for_messages(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> bool:
    async def count() -> int:
        async with open_database(url, migrate=False) as db, db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(message))).scalar_one())

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if asyncio.run(count()) > 0:
                return True
        except Exception:  # the database is not created yet
            pass
        time.sleep(0.1)
    return False


async def test_stopping_lets_the_transaction_in_progress_commit(
    db_url: str, discord: FakeDiscordServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job inside a write transaction when the service stops finishes it: the scheduler
    must not cancel it there and then (a connection cancelled mid-statement keeps SQLite's
    write lock, and the job's own record then waited for it: `run` hung on SIGTERM)."""
    in_transaction, release = asyncio.Event(), asyncio.Event()

    async def one_batch(ctx: JobContext, run: Any) -> None:
        async with ctx.db.write() as conn:
            in_transaction.set()
            await release.wait()  # the service is told to stop meanwhile
            await conn.execute(
                insert(harvest_cursor).values(
                    source="test", key="batch", value="1", updated_at=datetime.now(UTC)
                )
            )

    spec = JobSpec("one-batch", one_batch, "schedule_backup", run_on_first_start=True)
    monkeypatch.setattr(scheduler, "JOBS", (spec,))
    settings = service_settings(
        discord, None, db_url, schedule_harvest_discord=OFF, schedule_watchdog=OFF
    )
    stop = asyncio.Event()
    helpers: list[asyncio.Task[None]] = []

    async def stop_mid_transaction(service: Service) -> None:
        async def go() -> None:
            await in_transaction.wait()
            stop.set()
            while not service.db.stopping:  # noqa: ASYNC110 (stop() has begun; no event)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            release.set()

        helpers.append(asyncio.create_task(go()))

    await asyncio.wait_for(run_service(settings, stop=stop, on_started=stop_mid_transaction), 30)
    await asyncio.gather(*helpers)
    async with open_database(db_url) as db, db.read() as conn:
        written = (await conn.execute(select(harvest_cursor.c.value))).scalars().all()
        runs = (await conn.execute(select(job_run.c.job, job_run.c.status))).all()
    assert written == ["1"]
    assert runs == [("one-batch", "ok")]


async def test_a_job_fired_once_the_service_is_stopping_does_not_start(
    db: Database, discord: FakeDiscordServer
) -> None:
    started: list[str] = []

    async def job(ctx: JobContext, run: Any) -> None:
        started.append("job")

    spec = JobSpec("late", job, "schedule_backup", run_on_first_start=True)
    settings = service_settings(discord, None, db.url)
    service = Service(db, settings, ScaledClock(datetime.now(UTC), scale=1))
    db.stop_writes()
    await service._run(spec)  # as the scheduler fires it
    async with db.read() as conn:
        runs = (await conn.execute(select(job_run.c.job))).all()
    assert started == [] and runs == [] and service.running == {}


async def test_a_second_scheduler_on_the_same_database_is_refused(
    db_url: str, discord: FakeDiscordServer
) -> None:
    from clanpulse.ops.scheduler import AlreadyRunning

    settings = service_settings(
        discord, None, db_url, schedule_harvest_discord=OFF, schedule_watchdog=OFF
    )
    stop = asyncio.Event()
    refused: list[str] = []

    async def start_another(_service: Service) -> None:
        try:
            await run_service(settings, stop=asyncio.Event())
        except AlreadyRunning as exc:
            refused.append(str(exc))
        stop.set()

    await run_service(settings, stop=stop, on_started=start_another)
    assert refused and "another clanpulse run is already using" in refused[0]
    # the lock went with the first one: a new scheduler starts
    again = asyncio.Event()
    again.set()
    await run_service(settings, stop=again)
