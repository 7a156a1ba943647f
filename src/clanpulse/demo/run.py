"""``clanpulse demo``: the real pipeline, end to end, on a synthetic clan.

A fake Discord API (real HTTP on 127.0.0.1, with rate limits and occasional faults) serves
a generated community; the real harvester reads it into a fresh SQLite file; a channel the
bot may not read arrives instead as a DiscordChatExporter export; the report comes last.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from clanpulse.analytics.activity import activity_report
from clanpulse.analytics.clan import clan_report
from clanpulse.demo.community import (
    BRIDGE_WEBHOOK_ID,
    Community,
    generate_community,
    write_dce_export,
)
from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer
from clanpulse.demo.fake_wom import FakeWomConfig, FakeWomServer
from clanpulse.demo.wom_data import generate_wom_group
from clanpulse.outputs.activity import activity_sheet
from clanpulse.outputs.clan import members_sheet, summary_sheets
from clanpulse.outputs.tabular import Sheet, render_table
from clanpulse.pipeline.discord_harvest import harvest_discord
from clanpulse.pipeline.discord_import import import_discord_exports
from clanpulse.pipeline.wom_harvest import harvest_wom
from clanpulse.progress import BarProgress, LogProgress, Progress
from clanpulse.settings import Settings, load_settings
from clanpulse.sources.wom_client import WINDOW_SECONDS, WomClient
from clanpulse.store.database import Database, open_database

DB_NAME = "clanpulse-demo.db"
SHOWN_ROWS = 25
# The bot lacks access to this channel; an admin's export supplies it instead.
EXPORTED_CHANNEL = "events"
# Wise Old Man's real limit (20 requests a minute) runs 500x faster against the fake
WOM_TIME_SCALE = 0.002


async def run_demo(
    directory: Path, *, members: int, days: int, out: Console, err: Console, seed: int = 7
) -> Path:
    """Run the demo in ``directory`` (recreated); return the database path."""
    db_path = directory / DB_NAME

    # a fresh directory each run: the demo always starts from an empty database
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)  # noqa: ASYNC240 (once, before any I/O of the demo)
    err.print(f"generating a clan of {members} members with {days} days of chat ...")
    community = generate_community(seed=seed, members=members, days=days)
    exported = community.channel_by_name(EXPORTED_CHANNEL)
    assert exported is not None
    exported_id = int(exported["id"])
    config = FakeDiscordConfig(
        time_scale=0.05,  # Discord's real limits, 20x faster
        fault_rate=0.01,  # now and then a 429 or a 5xx, as in real life
        forbidden_channels={exported_id},
    )
    async with FakeDiscordServer(community, config) as server:
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{db_path}",
            discord_token=server.token,
            discord_api_url=server.url,
            discord_guild_id=community.guild_id,
            discord_channels=[],
            discord_bridge_authors=[str(BRIDGE_WEBHOOK_ID)],
        )
        async with open_database(settings.database_url) as db:
            progress: Progress
            if err.is_terminal:
                with BarProgress(err) as progress:
                    harvest = await harvest_discord(db, settings, progress=progress)
            else:
                harvest = await harvest_discord(db, settings, progress=LogProgress())
            totals = harvest.totals
            read = [c for c in harvest.channels if c.skipped is None and c.error is None]
            err.print(
                f"harvested {len(read)} channels and threads: {totals.inserted} messages stored, "
                f"{totals.counted} counted; {harvest.requests} requests, "
                f"{harvest.rate_limited} rate limits and {server.stats.faults} injected faults "
                "handled",
                highlight=False,
            )
            for outcome in harvest.channels:
                if outcome.skipped:
                    err.print(f"  #{outcome.channel.name}: skipped ({outcome.skipped})")

            export_dir = directory / "exports"
            export_dir.mkdir()
            files = write_dce_export(
                community, exported_id, export_dir, part_size=1000, offset="Europe/Amsterdam"
            )
            imported = await import_discord_exports(db, [export_dir], settings)
            err.print(
                f"imported #{EXPORTED_CHANNEL} from {len(files)} DiscordChatExporter files: "
                f"{imported.totals.inserted} messages, {imported.totals.counted} counted",
                highlight=False,
            )
            again = await import_discord_exports(db, [export_dir], settings)
            err.print(
                f"imported the same files again: {sum(f.skipped for f in again.files)} skipped, "
                f"{again.totals.inserted} new (nothing is ever counted twice)",
                highlight=False,
            )

            await _harvest_game_progress(db, settings, community, days, err)
            async with db.read() as conn:
                now = datetime.now(UTC)
                report = await activity_report(conn, now)
                clan = await clan_report(conn, now, settings.inactive_days)
    _print_top(activity_sheet(report), "Activity", out)
    for sheet in summary_sheets(clan):
        if sheet.rows:
            render_table(sheet, _wide(out))
    _print_top(members_sheet(clan), "Clan", out)
    err.print(
        f"\nThe demo database is {db_path}. Explore it with, for example:\n"
        f"  CLANPULSE_DATABASE_URL=sqlite:///{db_path} .venv/bin/clanpulse report clan "
        "--format xlsx -o clan.xlsx",
        highlight=False,
    )
    return db_path


async def _harvest_game_progress(
    db: Database, settings: Settings, community: Community, days: int, err: Console
) -> None:
    """The clan's in-game accounts on a fake Wise Old Man, harvested for real."""
    group = generate_wom_group(
        players=[(p.name, p.rank, p.invited_at, p.left_at) for p in community.ingame_players],
        days=days,
        snapshot_every_hours=48,
        name_changes=2,
    )
    config = FakeWomConfig(time_scale=WOM_TIME_SCALE)
    async with FakeWomServer(group, config) as wom:
        wom_settings = settings.model_copy(
            update={"wom_api_url": wom.url, "wom_group_id": wom.group_id}
        )
        async with WomClient.open(wom.url, window=WINDOW_SECONDS * WOM_TIME_SCALE) as client:
            if err.is_terminal:
                with BarProgress(err) as bars:
                    result = await harvest_wom(db, wom_settings, client=client, progress=bars)
            else:
                result = await harvest_wom(db, wom_settings, client=client, progress=LogProgress())
        err.print(
            f"harvested Wise Old Man group {result.group!r}: {result.members} members, "
            f"{result.new_snapshots} snapshots, {result.name_changes} renames, "
            f"{result.linked} Discord accounts linked to in-game ones; {result.requests} "
            f"requests, {wom.stats.rate_limited} over the limit",
            highlight=False,
        )


def _wide(out: Console) -> Console:
    return out if out.is_terminal else Console(file=out.file, width=400)


def _print_top(sheet: Sheet, label: str, out: Console) -> None:
    total = len(sheet.rows)
    sheet.rows = sheet.rows[:SHOWN_ROWS]
    sheet.title = f"{label}: top {len(sheet.rows)} of {total} members"
    render_table(sheet, _wide(out))
