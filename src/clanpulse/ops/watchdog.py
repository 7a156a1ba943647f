"""The watchdog: notices when harvesting has stopped working and says so, once.

An incident is a condition with a stable key (``stale:harvest-wom``,
``failing:report``, ``circuit:harvest-discord``). Each check compares the conditions
that hold now with the incidents open in the ``alert`` table: a new one is opened and
announced, one that no longer holds is closed and its recovery announced. So a harvest
that stays broken for a day raises one alert, not 144, and the same is true across
restarts and when ``clanpulse watchdog`` runs from cron in a fresh process each time.

Without a webhook the alerts go to the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.ops.jobs import HARVESTS, JOBS, WATCHDOG, why_disabled
from clanpulse.ops.runs import FAILED, JobHistory, job_history
from clanpulse.settings import Settings
from clanpulse.store.database import Database
from clanpulse.store.schema import alert

log = logging.getLogger("clanpulse.ops")

CIRCUIT_MARK = "circuit breaker open"
# an error quoted in an alert is cut to this length
ERROR_QUOTE = 300


@dataclass(frozen=True)
class Incident:
    key: str
    title: str
    lines: list[str]


@dataclass
class WatchOutcome:
    incidents: list[Incident] = field(default_factory=list)  # holding now
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    posted: int = 0
    post_errors: list[str] = field(default_factory=list)


def _when(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    hours = (now - moment).total_seconds() / 3600
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z} ({hours:.0f} h ago)"


def _quote(error: str | None) -> str:
    text = (error or "").strip().replace("\n", " ")
    return text if len(text) <= ERROR_QUOTE else text[: ERROR_QUOTE - 1] + "…"


def incidents_for(
    history: JobHistory, first_started_at: datetime | None, settings: Settings, now: datetime
) -> list[Incident]:
    """The conditions that hold for one job, judged from its run history."""
    job, zone = history.job, settings.zone
    found: list[Incident] = []
    if job in HARVESTS:
        since = history.last_ok_at or first_started_at
        if since is not None and now - since > timedelta(hours=settings.stale_hours):
            what = "succeeded" if history.last_ok_at else "succeeded yet (first run"
            lines = [
                f"No {job} has {what} since {_when(since, zone, now)}"
                + (")." if history.last_ok_at is None else "."),
                f"Alert threshold: CLANPULSE_STALE_HOURS={settings.stale_hours:g}.",
            ]
            if history.last_status == FAILED:
                lines.append(f"Last error: {_quote(history.last_error)}")
            found.append(Incident(f"stale:{job}", f"{job}: no fresh data", lines))
        if history.last_status == FAILED and CIRCUIT_MARK in (history.last_error or ""):
            found.append(
                Incident(
                    f"circuit:{job}",
                    f"{job}: the API is unavailable",
                    [f"The last run stopped asking the API: {_quote(history.last_error)}"],
                )
            )
    if job != WATCHDOG and history.failures_in_a_row >= settings.alert_after_failures:
        found.append(
            Incident(
                f"failing:{job}",
                f"{job}: failing",
                [
                    f"{history.failures_in_a_row} failed runs in a row.",
                    f"Last error: {_quote(history.last_error)}",
                ],
            )
        )
    return found


async def current_incidents(
    conn: AsyncConnection, settings: Settings, now: datetime
) -> list[Incident]:
    from sqlalchemy import func

    from clanpulse.store.schema import job_run

    found: list[Incident] = []
    for spec in JOBS:
        history = await job_history(conn, spec.name)
        if history.runs == 0 and why_disabled(spec, settings) is not None:
            continue  # not used here: neither configured nor run by hand
        first = (
            await conn.execute(
                select(func.min(job_run.c.started_at)).where(job_run.c.job == spec.name)
            )
        ).scalar()
        found.extend(incidents_for(history, first, settings, now))
    return found


async def watch(db: Database, settings: Settings, now: datetime) -> WatchOutcome:
    """Check once: open and announce new incidents, close and announce cleared ones."""
    outcome = WatchOutcome()
    async with db.read() as conn:
        outcome.incidents = await current_incidents(conn, settings, now)
    holding = {incident.key: incident for incident in outcome.incidents}
    async with db.write() as conn:
        open_rows = {
            row.key: row
            for row in await conn.execute(select(alert).where(alert.c.closed_at.is_(None)))
        }
        for key, incident in holding.items():
            if key not in open_rows:
                await conn.execute(
                    insert(alert).values(
                        key=key, message=incident.title, opened_at=now, alert_sent=False
                    )
                )
                outcome.opened.append(key)
        for key in open_rows.keys() - holding.keys():
            await conn.execute(
                update(alert).where(alert.c.id == open_rows[key].id).values(closed_at=now)
            )
            outcome.closed.append(key)
    await _announce(db, settings, holding, now, outcome)
    return outcome


async def _announce(
    db: Database,
    settings: Settings,
    holding: dict[str, Incident],
    now: datetime,
    outcome: WatchOutcome,
) -> None:
    """Post every alert and recovery not posted yet (a failed post is tried next check)."""
    async with db.read() as conn:
        unsent_alerts = list(
            await conn.execute(
                select(alert).where(alert.c.closed_at.is_(None), alert.c.alert_sent.is_(False))
            )
        )
        unsent_recoveries = list(
            await conn.execute(
                select(alert).where(
                    alert.c.closed_at.is_not(None),
                    alert.c.alert_sent.is_(True),
                    alert.c.recovery_sent.is_(False),
                )
            )
        )
    if not unsent_alerts and not unsent_recoveries:
        return
    messages: list[tuple[int, str, str, list[str]]] = []
    for row in unsent_alerts:
        incident = holding.get(row.key)
        lines = incident.lines if incident else []
        messages.append((row.id, "alert_sent", row.message, lines))
    for row in unsent_recoveries:
        lasted = (row.closed_at - row.opened_at).total_seconds() / 3600
        lines = [
            f"Cleared at {row.closed_at.astimezone(settings.zone):%Y-%m-%d %H:%M %Z}; "
            f"it lasted {lasted:.1f} h."
        ]
        messages.append((row.id, "recovery_sent", f"Recovered: {row.message}", lines))

    sent = await _deliver(settings, messages, outcome)
    if sent:
        async with db.write(bookkeeping=True) as conn:
            for alert_id, column in sent:
                await conn.execute(
                    update(alert).where(alert.c.id == alert_id).values({column: True})
                )


async def _deliver(
    settings: Settings, messages: list[tuple[int, str, str, list[str]]], outcome: WatchOutcome
) -> list[tuple[int, str]]:
    sent: list[tuple[int, str]] = []
    if settings.discord_webhook_url is None:
        for alert_id, column, title, lines in messages:
            log.warning("ALERT %s: %s", title, " ".join(lines))
            sent.append((alert_id, column))
        return sent

    from clanpulse.net.http import ApiError
    from clanpulse.net.webhook import DiscordWebhook
    from clanpulse.outputs.discord_post import alert_message

    try:
        async with DiscordWebhook.open(settings.discord_webhook_url.get_secret_value()) as hook:
            for alert_id, column, title, lines in messages:
                await hook.post(alert_message(title, lines, recovered=column == "recovery_sent"))
                sent.append((alert_id, column))
                outcome.posted += 1
                kind = "recovery" if column == "recovery_sent" else "alert"
                log.warning("posted %s: %s", kind, title)
    except ApiError as exc:
        outcome.post_errors.append(str(exc))
        log.error("could not post an alert: %s", exc)
    return sent
