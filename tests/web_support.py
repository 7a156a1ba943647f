"""Helpers for dashboard tests: a clan harvested for real from the fake APIs, and the
dashboard served on a loopback port over it."""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from clanpulse.demo.community import BRIDGE_WEBHOOK_ID, generate_community
from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer
from clanpulse.demo.run import _harvest_game_progress
from clanpulse.ops.clock import Clock
from clanpulse.ops.scheduler import Service
from clanpulse.pipeline.discord_harvest import harvest_discord
from clanpulse.progress import SilentProgress
from clanpulse.settings import Settings, load_settings
from clanpulse.store.database import Database, open_database
from clanpulse.web.server import dashboard

# the generated history ends now (the WOM backfill reads a year back from the real clock);
# tests ask for figures as of this minute, so they never move while a test runs
AS_OF = datetime.now(UTC).replace(second=0, microsecond=0)


async def build_clan(db: Database, *, members: int = 40, days: int = 45, seed: int = 11) -> None:
    """A generated clan, harvested through the real pipeline from the fake Discord and
    Wise Old Man servers (rate limits on, but fast)."""
    community = generate_community(seed=seed, members=members, days=days, end=AS_OF)
    config = FakeDiscordConfig(time_scale=0.01)
    async with FakeDiscordServer(community, config) as server:
        settings = load_settings(
            database_url=db.url,
            discord_token=server.token,
            discord_api_url=server.url,
            discord_guild_id=community.guild_id,
            discord_channels=[],
            discord_bridge_authors=[str(BRIDGE_WEBHOOK_ID)],
        )
        await harvest_discord(db, settings, progress=SilentProgress())
    quiet = Console(file=io.StringIO())
    await _harvest_game_progress(db, settings, community, days, quiet)


def web_settings(url: str, **extra: Any) -> Settings:
    # new data shows at the next request but one (tests/test_web_cache.py covers the delay)
    extra.setdefault("web_refresh_seconds", 0)
    return load_settings(database_url=url, **extra)


@asynccontextmanager
async def served(
    url: str, *, now: datetime | None = None, **extra: Any
) -> AsyncIterator[tuple[str, Database, Service]]:
    """The dashboard over the database at ``url`` on a free loopback port: (address, db,
    the job runner). ``now`` fixes the dashboard's clock (default: the real one)."""
    settings = web_settings(url, **extra)
    async with open_database(url) as db:
        service = Service(db, settings, Clock())
        clock = (lambda: now) if now is not None else None
        kwargs: dict[str, Any] = {"now": clock} if clock is not None else {}
        async with dashboard(db, settings, service, port=0, **kwargs) as address:
            try:
                yield address, db, service
            finally:
                await service.stop(grace=5)


def clan_template(base: Path) -> Path:
    """A harvested clan in SQLite, built once per test session under ``base`` (the
    session's tmp_path_factory root) and shared: copy it before changing anything."""
    folder = base / "web-clan-template"
    path, done = folder / "clanpulse.db", folder / "built"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()

        async def build() -> None:
            async with open_database(f"sqlite+aiosqlite:///{path}") as db:
                await build_clan(db)

        asyncio.run(build())
        done.touch()
    return path
