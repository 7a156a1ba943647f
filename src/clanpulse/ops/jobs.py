"""The jobs ``clanpulse run`` schedules, each also what a hand-started command runs.

A job is a coroutine ``(JobContext, RunHandle) -> None``: it does its work, sets the
items it handled and, when part of the work failed, a failure message. Recording the
run (``ops.runs.recorded_run``) is the caller's business, so ``clanpulse harvest
discord`` from cron and the scheduled harvest leave the same history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from clanpulse.ops.clock import Clock
from clanpulse.ops.runs import RunHandle
from clanpulse.progress import LogProgress, Progress
from clanpulse.settings import Settings
from clanpulse.store.database import Database

HARVEST_DISCORD = "harvest-discord"
HARVEST_WOM = "harvest-wom"
REPORT = "report"
BACKUP = "backup"
MAINTAIN = "maintain"
WATCHDOG = "watchdog"
HARVESTS = (HARVEST_DISCORD, HARVEST_WOM)
# show at most this many of a run's partial failures in its record
FAILURES_SHOWN = 5


@dataclass
class JobContext:
    db: Database
    settings: Settings
    clock: Clock
    progress: Progress = field(default_factory=LogProgress)
    # the reports of the last run of each job, for the caller to show (CLI) or ignore
    result: object | None = None


JobFunc = Callable[[JobContext, RunHandle], Awaitable[None]]


def _summarise(problems: list[str]) -> str:
    shown = "; ".join(problems[:FAILURES_SHOWN])
    more = len(problems) - FAILURES_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


async def harvest_discord_job(ctx: JobContext, run: RunHandle) -> None:
    from clanpulse.pipeline.discord_harvest import harvest_discord

    report = await harvest_discord(ctx.db, ctx.settings, progress=ctx.progress)
    ctx.result = report
    run.items = report.totals.inserted
    problems = [f"#{c.channel.name}: {c.error}" for c in report.failed]
    if report.circuit_open:
        problems.insert(0, "Discord API: circuit breaker open (it kept failing; requests stopped)")
    if problems:
        run.failure = _summarise(problems)


async def harvest_wom_job(ctx: JobContext, run: RunHandle) -> None:
    from clanpulse.pipeline.wom_harvest import harvest_wom
    from clanpulse.sources.wom_client import WINDOW_SECONDS

    report = await harvest_wom(
        ctx.db, ctx.settings, progress=ctx.progress, window=ctx.clock.seconds(WINDOW_SECONDS)
    )
    ctx.result = report
    run.items = report.new_snapshots + report.name_changes + report.events
    problems = list(report.failed_players)
    if report.circuit_open:
        problems.insert(
            0, "Wise Old Man API: circuit breaker open (it kept failing; requests stopped)"
        )
    if problems:
        run.failure = _summarise(problems)


async def report_job(ctx: JobContext, run: RunHandle) -> None:
    from clanpulse.ops.weekly_report import post_weekly_report

    run.items = await post_weekly_report(ctx.db, ctx.settings, ctx.clock.now())


async def backup_job(ctx: JobContext, run: RunHandle) -> None:
    await _maintain(ctx, run, backup=True, archive=False, optimize=False)


async def maintain_job(ctx: JobContext, run: RunHandle) -> None:
    await _maintain(ctx, run, backup=True, archive=True, optimize=True)


async def _maintain(
    ctx: JobContext, run: RunHandle, *, backup: bool, archive: bool, optimize: bool
) -> None:
    from clanpulse.ops.maintenance import maintain

    report = await maintain(
        ctx.db,
        ctx.settings,
        backup=backup,
        archive=archive,
        optimize=optimize,
        now=ctx.clock.now(),
    )
    ctx.result = report
    run.items = report.items
    if report.errors:
        run.failure = _summarise(report.errors)


async def watchdog_job(ctx: JobContext, run: RunHandle) -> None:
    from clanpulse.ops.watchdog import watch

    outcome = await watch(ctx.db, ctx.settings, ctx.clock.now())
    ctx.result = outcome
    run.items = outcome.posted
    if outcome.post_errors:
        run.failure = _summarise(outcome.post_errors)


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: JobFunc
    schedule_setting: str  # the Settings field holding its cron expression
    # a job that never ran before waits for its schedule, unless it is a harvest:
    # a new installation should have data at once
    run_on_first_start: bool


JOBS: tuple[JobSpec, ...] = (
    JobSpec(HARVEST_DISCORD, harvest_discord_job, "schedule_harvest_discord", True),
    JobSpec(HARVEST_WOM, harvest_wom_job, "schedule_harvest_wom", True),
    JobSpec(REPORT, report_job, "schedule_report", False),
    # daily backups feed the daily/weekly/monthly rotation; the monthly maintenance
    # backs up too (archiving only ever follows a good backup), then archives and optimizes
    JobSpec(BACKUP, backup_job, "schedule_backup", False),
    JobSpec(MAINTAIN, maintain_job, "schedule_maintain", False),
    JobSpec(WATCHDOG, watchdog_job, "schedule_watchdog", True),
)


def why_disabled(spec: JobSpec, settings: Settings) -> str | None:
    """Why a job is not scheduled here, or None when it is."""
    if getattr(settings, spec.schedule_setting) == "off":
        return f"CLANPULSE_{spec.schedule_setting.upper()} is off"
    if spec.name == HARVEST_DISCORD and (
        settings.discord_token is None
        or (not settings.discord_channels and settings.discord_guild_id is None)
    ):
        return "Discord is not configured"
    if spec.name == HARVEST_WOM and settings.wom_group_id is None:
        return "Wise Old Man is not configured"
    if spec.name == REPORT and settings.discord_webhook_url is None:
        return "CLANPULSE_DISCORD_WEBHOOK_URL is not set"
    return None
