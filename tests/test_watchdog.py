"""The watchdog: one alert per incident, one recovery when it clears, through the webhook
of the fake Discord server; also as the standalone ``clanpulse watchdog`` and ``status``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from clanpulse.cli import main
from clanpulse.demo.community import Community
from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer
from clanpulse.net.http import RetryPolicy
from clanpulse.ops.clock import Clock
from clanpulse.ops.jobs import HARVEST_DISCORD, JobContext, harvest_discord_job
from clanpulse.ops.runs import recorded_run
from clanpulse.ops.watchdog import watch
from clanpulse.pipeline.discord_harvest import harvest_discord
from clanpulse.settings import Settings
from clanpulse.sources.discord_client import DiscordClient
from clanpulse.store.database import Database
from clanpulse.store.schema import alert
from tests.harvest_support import env_for, settings_for, small_clan

QUICK_RETRY = RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.05)


class FixedClock(Clock):
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@pytest.fixture(scope="module")
def clan() -> Community:
    return small_clan(members=12, days=3)


@pytest.fixture
def fake(clan: Community) -> Iterator[FakeDiscordServer]:
    with FakeDiscordServer(clan, FakeDiscordConfig(time_scale=0.02)) as server:
        yield server


def configured(fake: FakeDiscordServer, db: Database, **extra: Any) -> Settings:
    extra.setdefault("discord_webhook_url", fake.webhook_url())
    return settings_for(fake, db.url, **extra)


async def harvest_at(db: Database, settings: Settings, at: datetime) -> str:
    """One recorded harvest run at a given moment; returns its outcome."""
    clock = FixedClock(at)
    try:
        async with recorded_run(db, HARVEST_DISCORD, clock.now) as run:
            await harvest_discord_job(JobContext(db, settings, clock), run)
    except Exception:
        return "failed"
    return "failed" if run.failure else "ok"


def posted_titles(fake: FakeDiscordServer) -> list[str]:
    # as Discord shows them: markdown escapes removed
    return [post.payload["embeds"][0]["title"].replace("\\", "") for post in fake.webhook_posts]


async def test_a_failing_harvest_raises_one_alert_and_one_recovery(
    db: Database, fake: FakeDiscordServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    t0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    broken = configured(fake, db, discord_token="not-the-token", alert_after_failures=3)
    for hour in range(3):
        assert await harvest_at(db, broken, t0 + timedelta(hours=hour)) == "failed"

    checks = [await watch(db, broken, t0 + timedelta(hours=3, minutes=10 * i)) for i in range(6)]
    assert checks[0].opened == ["failing:harvest-discord"]
    assert all(not later.opened for later in checks[1:])
    assert posted_titles(fake) == ["harvest-discord: failing"]
    alert_embed = fake.webhook_posts[0].payload["embeds"][0]
    assert "3 failed runs in a row" in alert_embed["description"]
    assert "401" in alert_embed["description"]  # the cause, quoted from the run

    fixed = configured(fake, db)
    assert await harvest_at(db, fixed, t0 + timedelta(hours=4)) == "ok"
    cleared = await watch(db, fixed, t0 + timedelta(hours=4, minutes=5))
    assert cleared.closed == ["failing:harvest-discord"]
    again = await watch(db, fixed, t0 + timedelta(hours=4, minutes=15))
    assert not again.opened and not again.closed
    assert posted_titles(fake) == [
        "harvest-discord: failing",
        "Recovered: harvest-discord: failing",
    ]
    # neither the bot token nor the webhook token was logged anywhere
    assert fake.config.webhook_token not in caplog.text
    assert fake.token not in caplog.text and "not-the-token" not in caplog.text


async def test_a_stale_harvest_is_reported_once_until_it_succeeds_again(
    db: Database, fake: FakeDiscordServer
) -> None:
    settings = configured(fake, db, stale_hours=24)
    t0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    assert await harvest_at(db, settings, t0) == "ok"
    assert (await watch(db, settings, t0 + timedelta(hours=23))).incidents == []
    day_later = [
        await watch(db, settings, t0 + timedelta(hours=25, minutes=10 * i)) for i in range(3)
    ]
    assert day_later[0].opened == ["stale:harvest-discord"]
    assert posted_titles(fake) == ["harvest-discord: no fresh data"]
    assert await harvest_at(db, settings, t0 + timedelta(hours=26)) == "ok"
    await watch(db, settings, t0 + timedelta(hours=26, minutes=1))
    assert posted_titles(fake)[-1] == "Recovered: harvest-discord: no fresh data"
    assert len(fake.webhook_posts) == 2


async def test_an_open_circuit_breaker_is_its_own_incident(db: Database, clan: Community) -> None:
    config = FakeDiscordConfig(time_scale=0.02, fail_channels=set(clan.message_channel_ids()))
    with FakeDiscordServer(clan, config) as failing:
        settings = configured(failing, db)
        async with DiscordClient.open(failing.url, failing.token, retry=QUICK_RETRY) as client:
            with pytest.raises(Exception, match="circuit breaker open"):
                async with recorded_run(db, HARVEST_DISCORD):
                    await harvest_discord(db, settings, client=client)
        outcome = await watch(db, settings, datetime.now(UTC))
        assert "circuit:harvest-discord" in outcome.opened
        assert "harvest-discord: the API is unavailable" in posted_titles(failing)


async def test_an_alert_that_could_not_be_posted_is_posted_at_the_next_check(
    db: Database, fake: FakeDiscordServer
) -> None:
    t0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    failing = configured(fake, db, alert_after_failures=1, discord_token="wrong")
    revoked = configured(
        fake,
        db,
        alert_after_failures=1,
        discord_token="wrong",
        discord_webhook_url=fake.webhook_url(token="revoked"),
    )
    assert await harvest_at(db, failing, t0) == "failed"
    first = await watch(db, revoked, t0 + timedelta(minutes=10))
    assert first.opened == ["failing:harvest-discord"] and first.posted == 0
    assert first.post_errors and "revoked" not in first.post_errors[0]
    second = await watch(db, failing, t0 + timedelta(minutes=20))
    third = await watch(db, failing, t0 + timedelta(minutes=30))
    assert (second.posted, third.posted) == (1, 0)
    assert posted_titles(fake) == ["harvest-discord: failing"]
    async with db.read() as conn:
        (row,) = (await conn.execute(select(alert))).all()
    assert row.alert_sent and row.closed_at is None


def test_the_watchdog_and_status_commands(tmp_path: Any, fake: FakeDiscordServer) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    env = {
        **env_for(fake, url),
        "CLANPULSE_DISCORD_TOKEN": "wrong",
        "CLANPULSE_DISCORD_WEBHOOK_URL": fake.webhook_url(),
        "CLANPULSE_ALERT_AFTER_FAILURES": "2",
    }
    runner = CliRunner()
    for _ in range(2):
        assert runner.invoke(main, ["harvest", "discord"], env=env).exit_code == 1
    result = runner.invoke(main, ["watchdog"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 incidents (1 new, 0 cleared); 1 messages posted" in result.output
    assert runner.invoke(main, ["watchdog"], env=env).exit_code == 0
    assert posted_titles(fake) == ["harvest-discord: failing"]

    status = runner.invoke(main, ["status", "--format", "json"], env=env)
    assert status.exit_code == 0, status.output
    jobs = {job["job"]: job for job in orjson.loads(status.stdout)["jobs"]}
    discord = jobs["harvest-discord"]
    assert discord["last_status"] == "failed" and discord["failures_in_a_row"] == 2
    assert "401" in discord["last_error"]
    assert discord["next_run"] > datetime.now(UTC).isoformat()
    assert jobs["harvest-wom"]["disabled"] == "Wise Old Man is not configured"
    assert jobs["watchdog"]["last_status"] == "ok"
    assert orjson.loads(status.stdout)["open_alerts"] == ["harvest-discord: failing"]

    table = runner.invoke(main, ["status"], env=env)
    assert table.exit_code == 0
    assert "harvest-discord" in table.output and "failed (2 in a row)" in table.output
    assert "open alert: harvest-discord: failing" in table.output


async def test_maintenance_forgets_job_history_older_than_it_keeps(db: Database) -> None:
    from sqlalchemy import func, insert

    from clanpulse.ops.maintenance import HISTORY_KEPT, maintain
    from clanpulse.store.schema import job_run

    now = datetime(2027, 6, 1, tzinfo=UTC)
    old, recent = now - HISTORY_KEPT - timedelta(days=1), now - timedelta(days=3)
    async with db.write() as conn:
        for started, status in [(old, "ok"), (old, "failed"), (recent, "ok"), (old, "running")]:
            await conn.execute(
                insert(job_run).values(job="watchdog", started_at=started, status=status)
            )
        await conn.execute(
            insert(alert).values(key="stale:x", message="x", opened_at=old, closed_at=old)
        )
        await conn.execute(insert(alert).values(key="stale:y", message="y", opened_at=old))
    settings = Settings(database_url=db.url)
    report = await maintain(db, settings, backup=False, archive=True, optimize=False, now=now)
    assert not report.errors
    assert any("forgot 3 job runs and closed alerts" in m for s in report.steps for m in s.messages)
    async with db.read() as conn:
        left = (await conn.execute(select(job_run.c.started_at, job_run.c.status))).all()
        alerts_left = (await conn.execute(select(alert.c.key))).scalars().all()
        assert (await conn.execute(select(func.count()).select_from(job_run))).scalar_one() == 2
    assert sorted(status for _, status in left) == ["ok", "running"]
    assert alerts_left == ["stale:y"]  # an open incident is never forgotten
