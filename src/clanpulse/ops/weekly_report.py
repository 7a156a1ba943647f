"""Post the weekly clan report, with its chart, to the configured Discord webhook."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from clanpulse.analytics.clan import ClanReport, clan_report
from clanpulse.analytics.daily import DayTotals, clan_daily
from clanpulse.net.http import ApiError
from clanpulse.net.webhook import DiscordWebhook, WebhookUrlError, check_webhook_url
from clanpulse.outputs.charts import weekly_chart_png
from clanpulse.outputs.discord_post import WEEK, top_of_week, weekly_report_messages
from clanpulse.settings import ENV_PREFIX, Settings, SettingsError
from clanpulse.store.database import Database

log = logging.getLogger("clanpulse.ops.weekly_report")


def webhook_url(settings: Settings) -> str:
    """The configured webhook URL; SettingsError (never echoing it) if missing or malformed."""
    settings.require("discord_webhook_url")
    assert settings.discord_webhook_url is not None
    url = settings.discord_webhook_url.get_secret_value()
    try:
        check_webhook_url(url)
    except WebhookUrlError as exc:
        raise SettingsError(f"{ENV_PREFIX}DISCORD_WEBHOOK_URL is malformed: {exc.detail}") from None
    return url


async def post_weekly_report(db: Database, settings: Settings, moment: datetime) -> int:
    """Post the report of the 7 days before ``moment``; return how many messages it took."""
    url = webhook_url(settings)  # before any work: a missing setting fails fast
    zone = settings.zone
    async with db.read() as conn:
        report = await clan_report(conn, moment, settings.inactive_days)
        # the report's members only, so the days add up to the headline's weekly totals
        members = [row.member_id for row in report.rows]
        daily = await clan_daily(conn, moment - WEEK, moment, zone, member_ids=members)
    # drawing takes a few hundred milliseconds: off the event loop the scheduler runs on
    chart = await asyncio.to_thread(_chart, report, daily)
    messages = weekly_report_messages(report, daily, chart, zone)
    posted = 0
    async with DiscordWebhook.open(url) as webhook:
        try:
            for message in messages:
                await webhook.post(message)
                posted += 1
        except ApiError:
            if posted:
                log.error("weekly report: only %d of %d messages posted", posted, len(messages))
            raise
    log.info(
        "weekly report posted: %d messages, %d requests (%d rate limited)",
        posted,
        webhook.requests,
        webhook.rate_limited,
    )
    return posted


def _chart(report: ClanReport, daily: list[DayTotals]) -> bytes:
    return weekly_chart_png(daily, top_of_week(report.rows, lambda r: r.messages["7d"]))
