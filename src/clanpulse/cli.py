"""The ``clanpulse`` command: thin Click commands over the library.

Exit status: 0 done, 1 the work failed in part or whole (a file, a channel, an API),
2 the command could not start (bad setting, bad argument).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.logging import RichHandler

from clanpulse import __version__
from clanpulse.outputs.tabular import Column, Sheet, render_table, write_csv, write_xlsx
from clanpulse.progress import BarProgress, LogProgress, Progress
from clanpulse.settings import Settings, SettingsError, load_settings

T = TypeVar("T")
REPORT_FORMATS = ("table", "json", "csv", "xlsx")
# tables going to files and pipes are as wide as their widest row needs (up to this)
TABLE_WIDTH = 400

stdout = Console()
# soft wrap: an error or summary stays one line however long (paths can be long)
stderr = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("clanpulse")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler: logging.Handler
    if stderr.is_terminal:
        handler = RichHandler(console=stderr, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx2 logs every request URL at INFO; keep that to -vv
    logging.getLogger("httpx2").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    logging.getLogger("httpcore2").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def fail(message: str, code: int = 1) -> None:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise SystemExit(code)


def exit_on_errors(errors: Iterable[str]) -> None:
    """Print each error of work that went on without it; exit 1 if there was any."""
    failed = False
    for error in errors:
        stderr.print(f"[bold red]error:[/] {error}", highlight=False)
        failed = True
    if failed:
        raise SystemExit(1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine, turning known failures into one clear line and an exit code."""
    from clanpulse.identity import IdentityError
    from clanpulse.net.http import ApiError
    from clanpulse.sources.discord_api import ApiPayloadError
    from clanpulse.sources.discord_export import ExportError

    try:
        return asyncio.run(coro)
    except SettingsError as exc:
        fail(str(exc), 2)
    except IdentityError as exc:
        fail(str(exc), 2)
    except (ApiError, ApiPayloadError, ExportError) as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        fail("interrupted; everything committed so far is kept, run again to resume", 130)
    raise AssertionError("unreachable")


@contextmanager
def progress_for(console: Console) -> Iterator[Progress]:
    """Bars on a terminal, log lines in pipes and service logs."""
    if console.is_terminal:
        with BarProgress(console) as bars:
            yield bars
    else:
        yield LogProgress()


def settings_from(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clanpulse")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for HTTP requests).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """clanpulse: chat activity and game progress of your community, in one database.

    Settings come from CLANPULSE_* environment variables or a .env file in the working
    directory (see the README).
    """
    _setup_logging(verbose, quiet)
    try:
        ctx.obj = {"settings": load_settings()}
    except SettingsError as exc:
        fail(str(exc), 2)


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the database, or upgrade its schema to this version."""
    from clanpulse.store.database import open_database
    from clanpulse.store.migrate import current_revision

    settings = settings_from(ctx)

    async def go() -> str | None:
        async with open_database(settings.database_url) as db:
            stderr.print(f"database: {db.display_url}", highlight=False)
            return await current_revision(db)

    revision = run(go())
    stderr.print(f"schema is at revision {revision}", highlight=False)


@main.group(name="import")
def import_group() -> None:
    """Import files exported by other tools."""


@import_group.command(name="discord-export")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def import_discord_export(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Import DiscordChatExporter JSON files, or folders of them (parts included).

    Each file goes in whole or not at all; a file already imported is skipped, and
    messages already stored (from another file or a harvest) are not counted twice.
    """
    from clanpulse.pipeline.discord_import import import_discord_exports
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)

    async def go() -> Any:
        async with open_database(settings.database_url) as db:
            with progress_for(stderr) as progress:
                return await import_discord_exports(db, paths, settings, progress=progress)

    report = run(go())
    for outcome in report.files:
        if outcome.error:
            continue
        state = (
            "already imported"
            if outcome.skipped
            else (f"{outcome.counts.received} messages, {outcome.counts.inserted} new")
        )
        stderr.print(f"{outcome.path}: {state}", highlight=False)
    totals = report.totals
    stderr.print(
        f"imported {len(report.files) - len(report.failed)} of {len(report.files)} files: "
        f"{totals.inserted} new messages ({totals.counted} counted)",
        highlight=False,
    )
    exit_on_errors(str(outcome.error) for outcome in report.failed)


async def _recorded(settings: Settings, job: str) -> Any:
    """Run one job by hand, recorded in the job history like a scheduled run."""
    from clanpulse.ops.clock import Clock
    from clanpulse.ops.jobs import JOBS, JobContext
    from clanpulse.ops.runs import recorded_run
    from clanpulse.store.database import open_database

    spec = next(spec for spec in JOBS if spec.name == job)
    async with open_database(settings.database_url) as db:
        with progress_for(stderr) as progress:
            ctx = JobContext(db, settings, Clock(), progress)
            async with recorded_run(db, job) as handle:
                await spec.func(ctx, handle)
            return ctx.result


@main.group()
def harvest() -> None:
    """Fetch new data from the platforms' APIs (incremental, safe to interrupt)."""


@harvest.command(name="discord")
@click.pass_context
def harvest_discord_cmd(ctx: click.Context) -> None:
    """Harvest the configured Discord channels (or the whole guild) through the REST API."""
    from clanpulse.ops.jobs import HARVEST_DISCORD

    settings = settings_from(ctx)
    try:
        settings.require("discord_token", "discord_source")
    except SettingsError as exc:
        fail(str(exc), 2)

    report = run(_recorded(settings, HARVEST_DISCORD))
    for warning in report.warnings:
        stderr.print(f"[yellow]warning:[/] {warning}", highlight=False)
    totals = report.totals
    ok = [c for c in report.channels if c.error is None and c.skipped is None]
    stderr.print(
        f"harvested {len(ok)} channels: {totals.inserted} new messages ({totals.counted} counted), "
        f"{report.requests} requests, {report.rate_limited} rate-limited",
        highlight=False,
    )
    exit_on_errors(f"#{outcome.channel.name}: {outcome.error}" for outcome in report.failed)


@harvest.command(name="wom")
@click.pass_context
def harvest_wom_cmd(ctx: click.Context) -> None:
    """Harvest the Wise Old Man group: roster, game progress, renames, membership events."""
    from clanpulse.ops.jobs import HARVEST_WOM

    settings = settings_from(ctx)
    try:
        settings.require("wom_group_id")
    except SettingsError as exc:
        fail(str(exc), 2)

    report = run(_recorded(settings, HARVEST_WOM))
    for warning in report.warnings:
        stderr.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if report.refresh_requested is not None:
        stderr.print(
            f"asked Wise Old Man to refresh {report.refresh_requested} outdated players "
            "(their new readings arrive with a later harvest)",
            highlight=False,
        )
    stderr.print(
        f"{report.group}: {report.members} members ({report.joined} joined, {report.left} left), "
        f"{report.new_snapshots} new snapshots, {report.backfilled} players backfilled, "
        f"{report.name_changes} renames, {report.events} membership events, "
        f"{report.linked} accounts linked; {report.requests} requests"
        + ("" if report.bulk else " (no bulk endpoint on this server: fetched per player)"),
        highlight=False,
    )
    exit_on_errors(report.failed_players)


@main.command(name="run")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=1),
    default=1.0,
    show_default=True,
    help="Run the schedule this many times faster than real time (to try a schedule out).",
)
@click.option("--no-web", is_flag=True, help="Do not serve the dashboard.")
@click.pass_context
def run_cmd(ctx: click.Context, time_scale: float, no_web: bool) -> None:
    """Run every job on its schedule, and serve the dashboard, until stopped (SIGTERM or
    Ctrl-C).

    Harvests hourly, the weekly report on Monday 09:00, maintenance monthly and the
    watchdog every 10 minutes, each changeable with a CLANPULSE_SCHEDULE_* setting.
    Runs missed while it was down are made up once when it starts. The dashboard listens
    on CLANPULSE_WEB_HOST:CLANPULSE_WEB_PORT (127.0.0.1:8080).
    """
    from clanpulse.ops.clock import Clock, ScaledClock
    from clanpulse.ops.scheduler import AlreadyRunning, run_service
    from clanpulse.store.schema import utcnow
    from clanpulse.web.server import ServerFailed

    settings = settings_from(ctx)
    clock = Clock() if time_scale == 1 else ScaledClock(utcnow(), time_scale)
    try:
        run(run_service(settings, clock=clock, web=not no_web))
    except (AlreadyRunning, ServerFailed) as exc:
        fail(str(exc), 1)
    stderr.print("stopped", highlight=False)


@main.command()
@click.option("--host", help="Address to listen on (default CLANPULSE_WEB_HOST, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port (default CLANPULSE_WEB_PORT, 8080)."
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the dashboard and JSON API alone (no schedule) until stopped.

    Read-only unless CLANPULSE_ADMIN_TOKEN is set. It listens on 127.0.0.1 by default:
    to reach it from elsewhere, put a reverse proxy with TLS in front of it.
    """
    from clanpulse.web.server import ServerFailed, serve_until_stopped

    settings = settings_from(ctx)

    def ready(address: str) -> None:
        stderr.print(f"dashboard at {address} (Ctrl-C to stop)", highlight=False)

    try:
        run(serve_until_stopped(settings, host=host, port=port, on_ready=ready))
    except ServerFailed as exc:
        fail(str(exc), 1)
    stderr.print("stopped", highlight=False)


@main.command()
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True
)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """Each job's last run, its outcome and next run; data freshness; open alerts."""
    from clanpulse.ops.status import service_status
    from clanpulse.store.database import open_database
    from clanpulse.store.schema import utcnow

    settings = settings_from(ctx)
    now = utcnow()

    async def go() -> Any:
        async with open_database(settings.database_url) as db, db.read() as conn:
            return await service_status(conn, settings, now)

    result = run(go())
    zone = settings.zone

    def when(moment: datetime | None) -> str:
        return "" if moment is None else f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"

    if fmt == "json":
        data = {
            "jobs": [
                {
                    "job": job.name,
                    "schedule": job.schedule,
                    "disabled": job.disabled,
                    "last_started_at": job.history.last_started_at,
                    "last_finished_at": job.history.last_finished_at,
                    "last_status": job.history.last_status,
                    "last_items": job.history.last_items,
                    "last_error": job.history.last_error,
                    "last_ok_at": job.history.last_ok_at,
                    "failures_in_a_row": job.history.failures_in_a_row,
                    "next_run": job.next_run,
                }
                for job in result.jobs
            ],
            "latest_message_at": result.latest_message_at,
            "open_alerts": result.open_alerts,
        }
        _emit_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n", None)
        return
    sheet = Sheet(
        f"Jobs (times in {settings.timezone})",
        [
            Column("Job"),
            Column("Schedule"),
            Column("Last run"),
            Column("Outcome"),
            Column("Items", "int"),
            Column("Last success"),
            Column("Next run"),
        ],
        [
            [
                job.name,
                job.schedule if job.disabled is None else f"off: {job.disabled}",
                when(job.history.last_started_at),
                (job.history.last_status or "never ran")
                + (
                    f" ({job.history.failures_in_a_row} in a row): {job.history.last_error}"
                    if job.history.failures_in_a_row and job.history.last_error
                    else ""
                ),
                job.history.last_items,
                when(job.history.last_ok_at),
                when(job.next_run),
            ]
            for job in result.jobs
        ],
    )
    render_table(sheet, _table_console(None))
    latest = when(result.latest_message_at) or "none yet"
    stdout.print(f"latest chat message: {latest}", highlight=False, markup=False)
    for title in result.open_alerts:
        stdout.print(f"open alert: {title}", highlight=False, markup=False)


@main.command()
@click.pass_context
def watchdog(ctx: click.Context) -> None:
    """Check once for stale harvests, failing jobs and unavailable APIs; alert once per incident.

    For installations that harvest from cron instead of `clanpulse run`: run it every
    10 minutes. Alerts go to CLANPULSE_DISCORD_WEBHOOK_URL (or the log without it).
    """
    from clanpulse.ops.jobs import WATCHDOG

    settings = settings_from(ctx)
    outcome = run(_recorded(settings, WATCHDOG))
    for incident in outcome.incidents:
        stderr.print(f"[yellow]incident:[/] {incident.title}", highlight=False)
    stderr.print(
        f"{len(outcome.incidents)} incidents ({len(outcome.opened)} new, "
        f"{len(outcome.closed)} cleared); {outcome.posted} messages posted",
        highlight=False,
    )
    exit_on_errors(outcome.post_errors)


AS_OF = click.option(
    "--as-of",
    "as_of",
    metavar="DATE|DATETIME",
    help="End of the windows (exclusive). A date means its midnight in "
    "CLANPULSE_TIMEZONE. Default: now.",
)


def _moment(as_of: str | None, settings: Settings) -> datetime:
    from clanpulse.timeutil import parse_as_of

    try:
        return parse_as_of(as_of, settings.zone)
    except ValueError as exc:
        fail(str(exc), 2)
    raise AssertionError("unreachable")


@main.group()
def report() -> None:
    """Reports over the stored data."""


@report.command(name="activity")
@AS_OF
@click.option(
    "--format", "fmt", type=click.Choice(REPORT_FORMATS), default="table", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output (xlsx default: activity-<date>.xlsx).",
)
@click.pass_context
def report_activity(ctx: click.Context, as_of: str | None, fmt: str, output: Path | None) -> None:
    """Messages per member over the last 7, 30 and 90 days and all time."""
    from clanpulse.analytics.activity import activity_report
    from clanpulse.outputs.activity import activity_json, activity_sheet
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)
    moment = _moment(as_of, settings)

    async def go() -> Any:
        async with open_database(settings.database_url) as db, db.read() as conn:
            return await activity_report(conn, moment)

    result = run(go())
    _write_report(
        fmt,
        output,
        "activity",
        json=lambda: activity_json(result),
        sheets=lambda: [activity_sheet(result)],
    )


@report.command(name="clan")
@AS_OF
@click.option(
    "--format",
    "fmt",
    type=click.Choice((*REPORT_FORMATS, "markdown")),
    default="table",
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output (xlsx default: clan-<date>.xlsx).",
)
@click.option(
    "--post",
    is_flag=True,
    help="Post the last 7 days to CLANPULSE_DISCORD_WEBHOOK_URL, with a chart; "
    "prints the report too only when --format or --output is given.",
)
@click.pass_context
def report_clan(
    ctx: click.Context, as_of: str | None, fmt: str, output: Path | None, post: bool
) -> None:
    """Every current clan member: chat, XP, EHP/EHB, boss kills, status; and a summary."""
    from clanpulse.analytics.clan import clan_report
    from clanpulse.outputs.clan import clan_json, clan_markdown, members_sheet, summary_sheets
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)
    moment = _moment(as_of, settings)

    if post:
        from click.core import ParameterSource

        from clanpulse.ops.weekly_report import post_weekly_report, webhook_url

        try:
            webhook_url(settings)  # missing or malformed: stop before any work
        except SettingsError as exc:
            fail(str(exc), 2)

        async def publish() -> int:
            async with open_database(settings.database_url) as db:
                return await post_weekly_report(db, settings, moment)

        posted = run(publish())
        stderr.print(f"posted the weekly report to the Discord webhook ({posted} messages)")
        if output is None and ctx.get_parameter_source("fmt") is ParameterSource.DEFAULT:
            return

    async def go() -> Any:
        async with open_database(settings.database_url) as db, db.read() as conn:
            return await clan_report(conn, moment, settings.inactive_days)

    result = run(go())
    _write_report(
        fmt,
        output,
        "clan",
        json=lambda: clan_json(result),
        # the members last: the XLSX opens on the summary, the terminal ends on the members
        sheets=lambda: [*summary_sheets(result), members_sheet(result)],
        markdown=lambda: clan_markdown(result),
    )


def _write_report(
    fmt: str,
    output: Path | None,
    name: str,
    *,
    json: Callable[[], bytes],
    sheets: Callable[[], list[Sheet]],
    markdown: Callable[[], str] | None = None,
) -> None:
    """Write a report in the chosen form; CSV carries the last (main) sheet."""
    if fmt == "json":
        _emit_bytes(json() + b"\n", output)
    elif fmt == "markdown" and markdown is not None:
        _emit_bytes(markdown().encode(), output)
    elif fmt == "csv":
        if output is None:
            write_csv(sheets()[-1], sys.stdout)
        else:
            with output.open("w", newline="", encoding="utf-8") as handle:
                write_csv(sheets()[-1], handle)
    elif fmt == "xlsx":
        path = output or Path(f"{name}-{datetime.now(UTC):%Y-%m-%d}.xlsx")
        write_xlsx(sheets(), path)
        stderr.print(f"wrote {path}", highlight=False)
    else:
        console = _table_console(output)
        *sections, main_sheet = sheets()
        for sheet in [*(s for s in sections if s.rows), main_sheet]:  # no empty boxes
            render_table(sheet, console)


def _table_console(output: Path | None) -> Console:
    """The terminal as it is; files and pipes get a width that fits the widest reports."""
    if output is not None:
        return Console(file=output.open("w", encoding="utf-8"), width=TABLE_WIDTH)
    return stdout if stdout.is_terminal else Console(width=TABLE_WIDTH)


def _emit_bytes(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)


@main.group(name="member")
def member_group() -> None:
    """Members and their accounts: list, show, link, unlink, opt out.

    NAME can be a member's name, an account as discord:<id or name> or osrs:<name>, or
    #<member id>. Names match exactly (in-game names after normalization), never partly.
    """


@member_group.command(name="list")
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True
)
@click.pass_context
def member_list(ctx: click.Context, fmt: str) -> None:
    """Every member with their accounts (opted-out members are marked)."""
    from clanpulse.identity import member_listing
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)

    async def go() -> Any:
        async with open_database(settings.database_url) as db, db.read() as conn:
            return await member_listing(conn)

    listing = run(go())
    if fmt == "json":
        _emit_bytes(orjson.dumps(listing, option=orjson.OPT_INDENT_2) + b"\n", None)
        return
    sheet = Sheet(
        "Members",
        [Column("ID", "int", 8), Column("Name"), Column("Accounts"), Column("Opted out")],
        [
            [
                m["member_id"],
                m["name"],
                "; ".join(f"{a['platform']}:{a['name']}" for a in m["accounts"]),
                "yes" if m["opted_out"] else "",
            ]
            for m in listing
        ],
    )
    render_table(sheet, _table_console(None))


@member_group.command(name="show")
@click.argument("name")
@click.pass_context
def member_show(ctx: click.Context, name: str) -> None:
    """One member as JSON: accounts, renames, clan role and join date, activity."""
    from clanpulse.identity import member_details, one_member
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)

    async def go() -> Any:
        async with open_database(settings.database_url) as db, db.read() as conn:
            return await member_details(conn, await one_member(conn, name))

    _emit_bytes(orjson.dumps(run(go()), option=orjson.OPT_INDENT_2) + b"\n", None)


@member_group.command(name="link")
@click.argument("name")
@click.argument("account_name", metavar="ACCOUNT")
@click.pass_context
def member_link(ctx: click.Context, name: str, account_name: str) -> None:
    """Make ACCOUNT belong to the member NAME (e.g. link discord:fern osrs:"Fern Whistle")."""
    from clanpulse.identity import move_account, one_account, one_member
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)

    async def go() -> tuple[int, str]:
        async with open_database(settings.database_url) as db, db.write() as conn:
            target = await one_member(conn, name)
            moved = await one_account(conn, account_name)
            await move_account(conn, moved.account_id, target, locked=True)
            return target, f"{moved.platform}:{moved.name}"

    target, label = run(go())
    stderr.print(f"linked {label} to member #{target}", highlight=False)


@member_group.command(name="unlink")
@click.argument("account_name", metavar="ACCOUNT")
@click.pass_context
def member_unlink(ctx: click.Context, account_name: str) -> None:
    """Give ACCOUNT a member of its own again (automatic linking will leave it alone)."""
    from clanpulse.identity import one_account, unlink
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)

    async def go() -> tuple[int, str]:
        async with open_database(settings.database_url) as db, db.write() as conn:
            found = await one_account(conn, account_name)
            return await unlink(conn, found.account_id), f"{found.platform}:{found.name}"

    new_member, label = run(go())
    stderr.print(f"unlinked {label}: it is now member #{new_member}", highlight=False)


@member_group.command(name="opt-out")
@click.argument("name")
@click.option("--undo", is_flag=True, help="Opt the member back in.")
@click.pass_context
def member_opt_out(ctx: click.Context, name: str, undo: bool) -> None:
    """Leave the member out of every report, export and ranking, by name and by number."""
    from clanpulse.identity import one_member, set_opted_out
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)

    async def go() -> int:
        async with open_database(settings.database_url) as db, db.write() as conn:
            member_id = await one_member(conn, name)
            await set_opted_out(conn, member_id, not undo)
            return member_id

    member_id = run(go())
    state = "opted back in" if undo else "opted out: absent from every report from now on"
    stderr.print(f"member #{member_id} {state}", highlight=False)


@main.command()
@click.option("--backup", "do_backup", is_flag=True, help="Back up the database (SQLite).")
@click.option("--archive", "do_archive", is_flag=True, help="Move cold rows to the archive.")
@click.option(
    "--optimize", "do_optimize", is_flag=True, help="Checkpoint, check, VACUUM if worth it."
)
@click.pass_context
def maintain(ctx: click.Context, do_backup: bool, do_archive: bool, do_optimize: bool) -> None:
    """Back up, archive old rows and tune the database (no option: all three, in that order).

    Backups go to CLANPULSE_BACKUP_DIR and are verified, then thinned out to the newest of
    each of the last CLANPULSE_BACKUP_KEEP_DAILY days, _WEEKLY weeks and _MONTHLY months.
    """
    from clanpulse.ops.maintenance import maintain as run_maintenance
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)
    everything = not (do_backup or do_archive or do_optimize)

    async def go() -> Any:
        async with open_database(settings.database_url) as db:
            return await run_maintenance(
                db,
                settings,
                backup=do_backup or everything,
                archive=do_archive or everything,
                optimize=do_optimize or everything,
                now=datetime.now(UTC),
            )

    report = run(go())
    for step in report.steps:
        for line in step.messages:
            stderr.print(f"{step.name}: {line}", highlight=False)
    exit_on_errors(f"{step.name}: {error}" for step in report.steps for error in step.errors)


@main.group(name="db")
def db_group() -> None:
    """The database itself: copy it to another backend."""


@db_group.command(name="copy")
@click.option(
    "--to",
    "target_url",
    required=True,
    metavar="URL",
    help="An empty database: sqlite:///path.db or postgresql://user:pass@host/db.",
)
@click.pass_context
def db_copy(ctx: click.Context, target_url: str) -> None:
    """Copy every table into a new, empty database (SQLite to PostgreSQL or back).

    The copy is one transaction: if it stops half-way the target stays empty and you can
    run it again. Point CLANPULSE_DATABASE_URL at the target afterwards.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from clanpulse.store.copy import CopyError, copy_database, display_url
    from clanpulse.store.database import open_database

    settings = settings_from(ctx)
    try:
        target = load_settings(database_url=target_url).database_url
    except SettingsError:
        fail("--to must be a sqlite:/// or postgresql:// URL", 2)
    shown = display_url(target)

    async def go() -> Any:
        async with open_database(settings.database_url) as source:
            stderr.print(f"copying {source.display_url} to {shown}", highlight=False)
            with progress_for(stderr) as progress:
                return await copy_database(source, target, progress=progress)

    try:
        report = run(go())
    except CopyError as exc:
        fail(f"copy to {shown}: {exc}")
    except (OSError, SQLAlchemyError) as exc:
        # the driver's own words, without the URL (it may carry the password)
        fail(f"copy to {shown} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    stderr.print(
        f"copied {report.rows} rows in {len(report.tables)} tables to {shown}; "
        "set CLANPULSE_DATABASE_URL to it to use it",
        highlight=False,
    )


# a demo run from a script serves this long, so it ends on its own
DEMO_SERVE_SECONDS = 15


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("clanpulse-demo"),
    show_default=True,
    help="Where the demo database and export files go (recreated each run).",
)
@click.option("--members", default=300, show_default=True, help="Size of the synthetic community.")
@click.option("--days", default=120, show_default=True, help="Days of chat history to generate.")
@click.option(
    "--serve-seconds",
    type=click.IntRange(min=0),
    help="Serve the dashboard this long at the end (default: until Ctrl-C when run from a "
    f"terminal, else {DEMO_SERVE_SECONDS} s; 0: not at all).",
)
def demo(directory: Path, members: int, days: int, serve_seconds: int | None) -> None:
    """Run the whole pipeline on a synthetic clan against the in-repo fake APIs, then
    serve the dashboard on the result."""
    from clanpulse.demo.run import run_demo

    db_path = run(run_demo(directory, members=members, days=days, out=stdout, err=stderr))
    seconds = serve_seconds
    if seconds is None and not sys.stdin.isatty():
        seconds = DEMO_SERVE_SECONDS
    if seconds != 0:
        run(_serve_demo(db_path, seconds))


async def _serve_demo(db_path: Path, seconds: int | None) -> None:
    from clanpulse.settings import load_settings
    from clanpulse.web.server import ServerFailed, serve_until_stopped

    settings = load_settings(database_url=f"sqlite+aiosqlite:///{db_path}")
    stop = asyncio.Event()

    def ready(address: str) -> None:
        until = "Ctrl-C to stop" if seconds is None else f"for {seconds} s"
        stderr.print(
            f"\nThe dashboard on the demo data: {address}/  ({until}; "
            f"`clanpulse serve` serves it again with CLANPULSE_DATABASE_URL=sqlite:///{db_path})",
            highlight=False,
        )
        if seconds is not None:
            asyncio.get_running_loop().call_later(seconds, stop.set)

    try:
        await serve_until_stopped(settings, on_ready=ready, stop=stop)
    except ServerFailed:
        # the usual port is taken (another clanpulse?): any free one will do for a demo
        await serve_until_stopped(settings, port=0, on_ready=ready, stop=stop)


if __name__ == "__main__":
    main()
